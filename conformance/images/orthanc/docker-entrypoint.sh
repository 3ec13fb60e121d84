#!/bin/bash
# Generate /tmp/orthanc.json from every configuration source, then run Orthanc on it.
set -o errexit

if [[ $# -ne 1 ]]; then
    echo "docker-entrypoint.sh: expected one argument, the configuration file to write" >&2
    exit 2
fi

# DCMTK derives DICOM UIDs from gethostid(); without /etc/hostid that can mean a slow DNS query.
if [[ -n $FORCE_HOST_ID ]]; then
    echo "$FORCE_HOST_ID" > /etc/hostid
elif [[ -z $GENERATE_HOST_ID_IF_MISSING || $GENERATE_HOST_ID_IF_MISSING == true ]]; then
    if [[ ! -f /etc/hostid || $(< /etc/hostid) == not-generated ]]; then
        printf '%x\n' "$(shuf -i 268435456-4294967295 -n 1)" > /etc/hostid
    fi
fi

python3 /startup/configure.py "$1"

verbosity=()
if [[ $TRACE_ENABLED == true ]]; then
    verbosity=(--trace)
elif [[ $VERBOSE_ENABLED == true ]]; then
    verbosity=(--verbose)
fi
exec Orthanc "${verbosity[@]}" "$1"

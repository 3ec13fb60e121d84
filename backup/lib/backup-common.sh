# shellcheck shell=bash
# Functions shared by the backup job's commands: logging, settings, MariaDB client options and
# the cron matcher. Sourced, never run; callers set `set -euo pipefail` themselves.

# shellcheck disable=SC2034 # the constants are read by the commands that source this file
# Format 2 adds the inventory (`# expect` lines: every archive the run wrote, by kind and source)
# and a last line `# end <SHA-256 of every line above>`; format 1 had neither.
BACKUP_MANIFEST_MAGIC='# hospital-backup manifest 2'
BACKUP_MANIFEST_MAGIC_V1='# hospital-backup manifest 1'
BACKUP_NAME_PATTERN='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z(-[0-9]+)?$'
VOLUME_NAME_PATTERN='^[A-Za-z0-9][A-Za-z0-9_.-]*$'
# Database names go into SQL the restore runs as root, so only plain names are accepted.
DATABASE_NAME_PATTERN='^[A-Za-z0-9_$-]{1,64}$'

log() {
	local stamp
	printf -v stamp '%(%Y-%m-%dT%H:%M:%SZ)T' -1
	printf '%s %s\n' "$stamp" "$*" >&2
}

die() {
	log "error: $*"
	exit 1
}

require_commands() {
	local name
	for name in "$@"; do
		command -v "$name" >/dev/null || die "required command '$name' is not installed"
	done
}

require_integer() { # name value minimum
	if ! [[ $2 =~ ^[0-9]{1,9}$ ]] || ((10#$2 < $3)); then
		die "$1 must be an integer >= $3, got '$2'"
	fi
}

# Checks that a password file exists and holds exactly one line, without printing it.
check_password_file() { # setting-name path
	local password
	[[ -n $2 ]] || die "$1 is not set: the password is only read from a file"
	[[ -f $2 && -r $2 ]] || die "$1 names '$2', which is not a readable file"
	password=$(<"$2")
	[[ -n $password ]] || die "the file named by $1 is empty"
	[[ $password != *$'\n'* ]] || die "the file named by $1 holds more than one line"
}

# Prints a MariaDB client option file holding the password read from a file. Callers pass it
# through a pipe (`--defaults-file=<(client_option_file F)`), so the password never reaches
# argv, the environment or the disk.
client_option_file() { # password-file
	local password
	password=$(<"$1")
	password=${password//\\/\\\\}
	password=${password//\"/\\\"}
	printf '[client]\npassword="%s"\n' "$password"
}

# Prints a file's SHA-256 in hex. OpenSSL uses the CPU's SHA extensions (several times faster
# than coreutils' sha256sum here); sha256sum is the fallback where openssl is not installed.
sha256_of() { # file
	local digest
	if command -v openssl >/dev/null; then
		digest=$(openssl dgst -sha256 -r -- "$1") || return 1
	else
		digest=$(sha256sum -- "$1") || return 1
	fi
	printf '%s\n' "${digest%% *}"
}

# Fills the array named by $1 with age arguments for every configured recipient and checks
# that age accepts them.
age_recipient_args() { # array-name
	local -n args=$1
	local recipient
	args=()
	for recipient in ${BACKUP_AGE_RECIPIENTS//,/ }; do
		args+=(--recipient "$recipient")
	done
	if [[ -n ${BACKUP_AGE_RECIPIENTS_FILE:-} ]]; then
		[[ -r $BACKUP_AGE_RECIPIENTS_FILE ]] ||
			die "BACKUP_AGE_RECIPIENTS_FILE names '$BACKUP_AGE_RECIPIENTS_FILE', which is not readable"
		args+=(--recipients-file "$BACKUP_AGE_RECIPIENTS_FILE")
	fi
	((${#args[@]} > 0)) ||
		die "no age recipient: set BACKUP_AGE_RECIPIENTS or BACKUP_AGE_RECIPIENTS_FILE (backups are never written unencrypted)"
	age --encrypt "${args[@]}" </dev/null >/dev/null ||
		die "age rejected the configured recipients"
}

# Prints "<start epoch> <backup name> <finish epoch>" of the last good backup, or nothing. The
# start is its recovery point: a change made after it may be missing from the backup. (Records
# written before format 2 hold "<finish epoch> <backup name>".)
last_success() { # state-dir
	[[ -r $1/last-success ]] && head -n 1 "$1/last-success"
	return 0
}

# Writes a file atomically: the content goes to a temporary file that is renamed over the target.
write_atomically() { # path content
	local staging="$1.tmp.$$"
	printf '%s\n' "$2" >"$staging"
	mv -f -- "$staging" "$1"
}

json_string() { # value -> a JSON string literal (control characters become spaces)
	local text=${1//\\/\\\\}
	text=${text//\"/\\\"}
	text=${text//[$'\001'-$'\037']/ }
	printf '"%s"' "$text"
}

json_string_array() { # values...
	local first=1 value
	printf '['
	for value in "$@"; do
		((first)) || printf ','
		first=0
		json_string "$value"
	done
	printf ']'
}

# --- cron ---------------------------------------------------------------------------------
# A five-field cron expression (minute hour day-of-month month day-of-week) or one of the macros
# @hourly, @daily, @midnight, @weekly, @monthly, @yearly and @annually. A field is a comma list of
# `*`, a value or a range a-b, each optionally followed by /step (1 to the field's highest value;
# a/step runs from a to the field's end). A value is one or two digits, or in the month and
# day-of-week fields a three-letter English name in any case; 0 and 7 are Sunday. Vixie cron's
# day rule: when either day field starts with `*`, both must match; otherwise either may.
# components/cron.py and the policy pack's copy read expressions the same way; a test compares
# their next runs with `backup-scheduler next`.

CRON_MONTHS=(jan feb mar apr may jun jul aug sep oct nov dec)
CRON_WEEKDAYS=(sun mon tue wed thu fri sat)

# Expands macros; sets CRON_FIELDS (array of five fields) or returns 1.
cron_split() { # expression
	local expression=$1
	case $expression in
	@yearly | @annually) expression='0 0 1 1 *' ;;
	@monthly) expression='0 0 1 * *' ;;
	@weekly) expression='0 0 * * 0' ;;
	@daily | @midnight) expression='0 0 * * *' ;;
	@hourly) expression='0 * * * *' ;;
	esac
	read -r -a CRON_FIELDS <<<"$expression"
	((${#CRON_FIELDS[@]} == 5))
}

# Sets CRON_VALUE from a number or a name; returns 1 when the token is neither.
cron_token() { # token kind(month|weekday|number)
	local token=${1,,} index
	if [[ $token =~ ^[0-9]{1,2}$ ]]; then
		CRON_VALUE=$((10#$token))
		return 0
	fi
	local -a names=()
	[[ $2 == month ]] && names=("${CRON_MONTHS[@]}")
	[[ $2 == weekday ]] && names=("${CRON_WEEKDAYS[@]}")
	for index in "${!names[@]}"; do
		if [[ $token == "${names[index]}" ]]; then
			CRON_VALUE=$index
			[[ $2 == month ]] && CRON_VALUE=$((index + 1))
			return 0
		fi
	done
	return 1
}

# Returns 0 when value matches the field, 1 when not, 2 when the field is malformed.
cron_field_matches() { # value field min max kind
	local value=$1 min=$3 max=$4 kind=$5 part range step low high matched=1
	local -a parts
	# `read -a` drops one trailing empty item, which would make "1," read as "1".
	[[ -n $2 && $2 != *, ]] || return 2
	IFS=, read -r -a parts <<<"$2"
	for part in "${parts[@]}"; do
		range=${part%%/*}
		step=1
		if [[ $part == */* ]]; then
			step=${part#*/}
			[[ $step =~ ^[0-9]{1,2}$ ]] && ((10#$step >= 1 && 10#$step <= max)) || return 2
			step=$((10#$step))
		fi
		if [[ $range == '*' ]]; then
			low=$min
			high=$max
		elif [[ $range == *-* ]]; then
			cron_token "${range%%-*}" "$kind" || return 2
			low=$CRON_VALUE
			cron_token "${range#*-}" "$kind" || return 2
			high=$CRON_VALUE
		else
			cron_token "$range" "$kind" || return 2
			low=$CRON_VALUE
			high=$low
			[[ $part == */* ]] && high=$max
		fi
		((low >= min && high <= max && low <= high)) || return 2
		if ((value >= low && value <= high && (value - low) % step == 0)); then
			matched=0
		fi
	done
	return $matched
}

# Returns 0 when the epoch second's minute matches, 1 when not, 2 for a malformed expression.
cron_matches() { # expression epoch
	local minute hour day month weekday status
	cron_split "$1" || return 2
	printf -v minute '%(%M)T' "$2"
	printf -v hour '%(%H)T' "$2"
	printf -v day '%(%d)T' "$2"
	printf -v month '%(%m)T' "$2"
	printf -v weekday '%(%w)T' "$2"
	CRON_MATCH_MINUTE=1 CRON_MATCH_HOUR=1 CRON_MATCH_DAY=1

	cron_field_matches $((10#$minute)) "${CRON_FIELDS[0]}" 0 59 number
	status=$?
	((status == 2)) && return 2
	((status == 0)) && CRON_MATCH_MINUTE=0
	cron_field_matches $((10#$hour)) "${CRON_FIELDS[1]}" 0 23 number
	status=$?
	((status == 2)) && return 2
	((status == 0)) && CRON_MATCH_HOUR=0

	local day_status month_status weekday_status
	cron_field_matches $((10#$day)) "${CRON_FIELDS[2]}" 1 31 number
	day_status=$?
	cron_field_matches $((10#$month)) "${CRON_FIELDS[3]}" 1 12 month
	month_status=$?
	cron_field_matches "$weekday" "${CRON_FIELDS[4]}" 0 7 weekday
	weekday_status=$?
	if ((weekday_status == 1 && weekday == 0)); then
		cron_field_matches 7 "${CRON_FIELDS[4]}" 0 7 weekday
		weekday_status=$?
	fi
	((day_status == 2 || month_status == 2 || weekday_status == 2)) && return 2

	local day_matches=1
	if [[ ${CRON_FIELDS[2]} == \** || ${CRON_FIELDS[4]} == \** ]]; then
		((day_status == 0 && weekday_status == 0)) && day_matches=0
	else
		((day_status == 0 || weekday_status == 0)) && day_matches=0
	fi
	((month_status == 0 && day_matches == 0)) && CRON_MATCH_DAY=0

	((CRON_MATCH_MINUTE == 0 && CRON_MATCH_HOUR == 0 && CRON_MATCH_DAY == 0))
}

# Prints the first epoch minute strictly after `after` that matches, searching up to ~5 years.
# Limitation: the day and hour skips assume 24-hour days, so on a daylight-saving change in a
# non-UTC TZ the search may skip one hour of that day; the scheduler itself checks every minute.
cron_next() { # expression after-epoch
	local moment=$((($2 / 60 + 1) * 60)) limit=$(($2 + 5 * 366 * 86400)) status
	local hour minute
	while ((moment <= limit)); do
		cron_matches "$1" "$moment"
		status=$?
		((status == 2)) && return 2
		if ((status == 0)); then
			printf '%s\n' "$moment"
			return 0
		fi
		printf -v hour '%(%H)T' "$moment"
		printf -v minute '%(%M)T' "$moment"
		if ((CRON_MATCH_DAY != 0)); then
			moment=$((moment + (24 - 10#$hour) * 3600 - 10#$minute * 60))
		elif ((CRON_MATCH_HOUR != 0)); then
			moment=$((moment + 3600 - 10#$minute * 60))
		else
			moment=$((moment + 60))
		fi
	done
	return 1
}

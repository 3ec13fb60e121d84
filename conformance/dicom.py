"""DICOM clients for the checks and the benchmark: C-ECHO and C-STORE with pynetdicom."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, _config
from pynetdicom.sop_class import CTImageStorage, MRImageStorage, Verification

SUCCESS = 0x0000
# Real instances shipped inside pydicom: a 39 kB CT slice and a 10 kB MR slice.
CT_SAMPLE = "CT_small.dcm"


@dataclass(frozen=True)
class StoreOutcome:
    """What one association achieved: established, and the status of every C-STORE."""

    established: bool
    statuses: tuple[int, ...] = ()

    @property
    def all_stored(self) -> bool:
        return self.established and bool(self.statuses) and all(s == SUCCESS for s in self.statuses)


def sample_ct(study_uid: str | None = None) -> Dataset:
    """The pydicom CT sample with fresh study/series/instance UIDs (a new study each call)."""
    dataset = dcmread(get_testdata_file(CT_SAMPLE))
    dataset.StudyInstanceUID = study_uid or generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    return dataset


def _application(calling: str, nodelay: bool) -> AE:
    # Disabling Nagle on the sending socket: without it small PDUs wait for delayed ACKs.
    _config.SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)] if nodelay else []
    application = AE(ae_title=calling)
    application.acse_timeout = 10
    application.dimse_timeout = 30
    application.network_timeout = 30
    return application


def echo(host: str, port: int, called: str, calling: str, source: str | None = None) -> int | None:
    """C-ECHO status, or None when the association was refused.

    `source` is the local address to connect from (a modality's address on this host).
    """
    application = _application(calling, nodelay=True)
    application.add_requested_context(Verification)
    association = application.associate(host, port, ae_title=called, bind_address=(source or "", 0))
    if not association.is_established:
        return None
    try:
        status = association.send_c_echo()
        return int(status.Status) if "Status" in status else None
    finally:
        association.release()


def store(
    host: str,
    port: int,
    called: str,
    calling: str,
    datasets: Iterable[Dataset],
    nodelay: bool = True,
    source: str | None = None,
) -> StoreOutcome:
    """C-STORE every dataset over one association, from `source` when given."""
    application = _application(calling, nodelay)
    application.add_requested_context(CTImageStorage)
    application.add_requested_context(MRImageStorage)
    association = application.associate(host, port, ae_title=called, bind_address=(source or "", 0))
    if not association.is_established:
        return StoreOutcome(False)
    statuses = []
    try:
        for dataset in datasets:
            status = association.send_c_store(dataset)
            statuses.append(int(status.Status) if "Status" in status else -1)
    finally:
        association.release()
    return StoreOutcome(True, tuple(statuses))

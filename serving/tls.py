"""TLS that follows its files: a server context (TLS 1.2 at least) and the reloader that swaps in
a new one when the certificate and key on disk change (a rotated Secret), whole or not at all."""

from __future__ import annotations

import logging
import ssl

from headroom.worker import Worker
from serving.files import file_signature
from serving.logs import log_fields

log = logging.getLogger(__name__)


def build_server_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """A server context: TLS 1.2 or newer, the pair loaded from disk now."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=certfile, keyfile=keyfile)
    return context


class CertificateReloader:
    """Holds the SSLContext new connections are wrapped with, and rebuilds it on file change.

    A new context is built whole and then swapped in (one reference assignment), rather than
    reloading the pair into the live one, because a handshake between loading the certificate and
    the key would find a certificate without its key. A pair that does not load (e.g. the
    certificate written, the key not yet) keeps the old context until the files change again.
    """

    def __init__(self, certfile: str, keyfile: str, *, poll_seconds: float) -> None:
        self.certfile, self.keyfile = certfile, keyfile
        self.poll_seconds = poll_seconds
        self._signature = file_signature(certfile, keyfile)
        self._failed_signature: object = None
        self.context = build_server_context(certfile, keyfile)
        self.reloads = 0
        self.worker = Worker(self._loop, name="cert-reloader")

    def check(self) -> bool:
        """Rebuild the context if the files changed; True when a new one was swapped in."""
        try:
            signature = file_signature(self.certfile, self.keyfile)
        except OSError as exc:
            log.warning(
                "certificate files unreadable; keeping the current pair",
                extra=log_fields(error=str(exc)),
            )
            return False
        if signature in (self._signature, self._failed_signature):
            return False
        try:
            context = build_server_context(self.certfile, self.keyfile)
        except (OSError, ssl.SSLError) as exc:
            self._failed_signature = signature
            log.warning(
                "new certificate files do not load; keeping the current pair",
                extra=log_fields(certfile=self.certfile, error=str(exc)),
            )
            return False
        self.context, self._signature, self._failed_signature = context, signature, None
        self.reloads += 1
        log.info("serving a new certificate", extra=log_fields(certfile=self.certfile))
        return True

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def _loop(self) -> None:
        while not self.worker.stopped.wait(self.poll_seconds):
            self.check()

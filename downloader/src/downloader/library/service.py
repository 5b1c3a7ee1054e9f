"""The downloader with its second input: the photo library (PHOTOS_DIR), when one is configured.

The scanner shares the downloader's checks (decode pool and decode budget), its bound on bytes held at
once and its supervisor (a scanner that dies stops the service), and takes part in what the downloader
already does for URLs: ``--once`` waits until the library is caught up and confirmed, a retry
request (``dyimages retry``) resets the refused library files it matches as well as the failed URLs,
and the indexer's refusal of a photo the embedding service could not decode is recorded per path.
"""

from __future__ import annotations

from downloader.library.scanner import LibraryScanner
from downloader.service import Downloader
from downloader.settings import DownloaderSettings
from dyimages_common.library.refusal import LibraryRefusal
from dyimages_common.urls.refetch import RetryRequest


class LibraryDownloader(Downloader):
    """:class:`Downloader` plus the :class:`LibraryScanner` of PHOTOS_DIR (none when it is unset)."""

    def __init__(self, settings: DownloaderSettings) -> None:
        super().__init__(settings)
        self.library = LibraryScanner(settings, self._keeper, self.budget) if settings.photos_dir else None

    @property
    def busy(self) -> bool:
        return super().busy or (self.library is not None and self.library.busy)

    async def run(self, *, once: bool) -> None:
        if self.library is not None:
            await self.library.open()
            self.supervisor.start("library", self.library.run())
            self.supervisor.start("library-publisher", self.library.publisher.run())
        await super().run(once=once)

    async def refuse_library_files(self, refusal: LibraryRefusal) -> list[str]:
        if self.library is None:
            return await super().refuse_library_files(refusal)
        return await self.library.refuse(refusal)

    async def retry_failed(self, request: RetryRequest) -> list[str]:
        urls = await super().retry_failed(request)
        return urls + (await self.library.retry(request) if self.library is not None else [])

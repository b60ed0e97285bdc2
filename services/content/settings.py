from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.content.pdfcheck import Limits
from shared.settings import ServiceSettings


class ContentSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONTENT_")

    service_name: ClassVar[str] = "content"

    database_url: str = "sqlite+aiosqlite:///./.stories/content.sqlite3"

    # A manuscript larger than this is refused by S3 itself (the presigned POST
    # policy) and again when the submission is checked.
    manuscript_max_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    # How long a presigned POST may be used to upload.
    upload_link_seconds: int = Field(default=900, gt=0, le=7 * 24 * 3600)
    # How long a reviewer's (or author's) manuscript download link lives.
    manuscript_link_seconds: int = Field(default=300, gt=0, le=3600)
    # Published PDFs never change under a key (each edition gets a new one),
    # so caches downstream may keep them this long.
    published_cache_seconds: int = 31_536_000
    # The public catalog is cached in process; a publish or unpublish empties
    # it everywhere at once, so this only bounds staleness if a message is lost.
    catalog_cache_seconds: float = Field(default=60.0, ge=0)
    # ...and bounded by the bytes it holds (least recently used out first): about
    # 2,000 book pages and a few hundred catalog pages fit in the default.
    catalog_cache_bytes: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024)
    # Cover images: uploaded like manuscripts, checked and copied at publication.
    cover_max_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    # Where the published bucket's covers/ are served publicly (the CloudFront
    # domain); without it books carry no cover_url.
    published_assets_url: str | None = None
    # The OPDS feeds' links to delivery (acquisitions) and access (the sign-in of
    # the authentication document): empty where one origin serves every service,
    # as the load balancer does; the other origin otherwise (embedded run, compose).
    opds_delivery_url: str = ""
    opds_access_url: str = ""
    # The metrics service: the feeds' "most read" group asks it which books are
    # read most (bounded: past the deadline the feeds go without the group).
    metrics_url: str = "http://127.0.0.1:8004"
    metrics_timeout_seconds: float = Field(default=1.0, gt=0)
    # A submission waiting for review longer than this is marked overdue in the
    # review queue (and counted so by metrics, which takes the same setting).
    review_overdue_days: int = Field(default=14, gt=0, le=365)
    # The deep check of a manuscript at submit (services/content/pdfcheck.py): the
    # most pages a book may have, and the limits of the child process that
    # parses and renders it (a hostile file costs at most these).
    max_pages: int = Field(default=300, gt=0, le=10_000)
    pdf_check_seconds: float = Field(default=20.0, gt=0, le=300)
    pdf_check_cpu_seconds: int = Field(default=10, gt=0, le=300)
    pdf_check_memory_bytes: int = Field(default=1024 * 1024 * 1024, ge=256 * 1024 * 1024)
    # How many checks run at once in one API process, and how many more may wait:
    # each child may use pdf_check_memory_bytes, so Terraform gives content's task
    # room for this many beside the service; past the line a submit is a 503.
    pdf_checks_at_once: int = Field(default=1, ge=1, le=16)
    pdf_checks_waiting: int = Field(default=4, ge=0, le=100)

    def pdf_check_limits(self) -> Limits:
        return Limits(
            max_pages=self.max_pages,
            cpu_seconds=self.pdf_check_cpu_seconds,
            memory_bytes=self.pdf_check_memory_bytes,
            wall_seconds=self.pdf_check_seconds,
        )

    # Processing a publication in content's worker (services/content/processing.py):
    # the limits of the child that renders, extracts and rewrites the PDF. More
    # than the check's: it renders thumbnails and rewrites every picture.
    processing_seconds: float = Field(default=120.0, gt=0, le=900)
    processing_cpu_seconds: int = Field(default=60, gt=0, le=900)
    processing_memory_bytes: int = Field(default=1536 * 1024 * 1024, ge=256 * 1024 * 1024)

    def processing_limits(self) -> Limits:
        return Limits(
            max_pages=self.max_pages,
            cpu_seconds=self.processing_cpu_seconds,
            memory_bytes=self.processing_memory_bytes,
            wall_seconds=self.processing_seconds,
        )

"""Hostile PDFs made in code (no downloads), each with the refusal it must get from
the manuscript's deep check (services/content/pdfcheck.py)."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable

import pikepdf

from stories.samples import story_pdf


def _saved(pdf: pikepdf.Pdf, **options: object) -> bytes:
    out = io.BytesIO()
    pdf.save(out, **options)  # type: ignore[arg-type]
    return out.getvalue()


def _story() -> pikepdf.Pdf:
    return pikepdf.open(io.BytesIO(story_pdf("Hostile", pages=2)))


def javascript_on_open() -> bytes:
    pdf = _story()
    pdf.Root.OpenAction = pikepdf.Dictionary(
        S=pikepdf.Name.JavaScript, JS=pikepdf.String("app.alert('hi')")
    )
    return _saved(pdf)


def javascript_in_names() -> bytes:
    pdf = _story()
    script = pdf.make_indirect(
        pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS=pikepdf.String("this.print()"))
    )
    pdf.Root.Names = pikepdf.Dictionary(
        JavaScript=pikepdf.Dictionary(Names=pikepdf.Array([pikepdf.String("a"), script]))
    )
    return _saved(pdf)


def launch_in_a_link() -> bytes:
    pdf = _story()
    link = pikepdf.Dictionary(
        Type=pikepdf.Name.Annot,
        Subtype=pikepdf.Name.Link,
        Rect=pikepdf.Array([0, 0, 100, 100]),
        A=pikepdf.Dictionary(S=pikepdf.Name.Launch, F=pikepdf.String("calc.exe")),
    )
    pdf.pages[1].Annots = pdf.make_indirect(pikepdf.Array([pdf.make_indirect(link)]))
    return _saved(pdf)


def embedded_file() -> bytes:
    pdf = _story()
    pdf.attachments["notes.exe"] = pikepdf.AttachedFileSpec(pdf, b"MZ not really")
    return _saved(pdf)


def rich_media() -> bytes:
    pdf = _story()
    media = pikepdf.Dictionary(
        Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.RichMedia, Rect=pikepdf.Array([0, 0, 9, 9])
    )
    pdf.pages[0].Annots = pdf.make_indirect(pikepdf.Array([pdf.make_indirect(media)]))
    return _saved(pdf)


def xfa_form() -> bytes:
    pdf = _story()
    pdf.Root.AcroForm = pikepdf.Dictionary(
        Fields=pikepdf.Array(), XFA=pdf.make_stream(b"<xdp:xdp/>")
    )
    return _saved(pdf)


def encrypted_with_a_password() -> bytes:
    return _saved(_story(), encryption=pikepdf.Encryption(owner="owner", user="secret"))


def encrypted_without_one() -> bytes:
    # Opens without a password (an owner password only), yet is encrypted.
    return _saved(_story(), encryption=pikepdf.Encryption(owner="owner", user=""))


def ten_thousand_pages() -> bytes:
    pdf = pikepdf.new()
    for _ in range(10_000):
        pdf.add_blank_page(page_size=(200, 200))
    return _saved(pdf)


def image_bomb() -> bytes:
    """An image of 100,000 x 100,000 pixels whose stream is a few kilobytes: a viewer
    that decodes it asks for 10 gigabytes."""
    pdf = _story()
    zeros = zlib.compress(b"\x00" * 1_000_000, 9)
    image = pdf.make_stream(zeros)
    image.Type = pikepdf.Name.XObject
    image.Subtype = pikepdf.Name.Image
    image.Width, image.Height = 100_000, 100_000
    image.ColorSpace = pikepdf.Name.DeviceGray
    image.BitsPerComponent = 8
    image.Filter = pikepdf.Name.FlateDecode
    page = pdf.pages[0]
    page.Resources.XObject = pikepdf.Dictionary(Im1=image)
    page.Contents = pdf.make_stream(b"q 400 0 0 400 0 0 cm /Im1 Do Q")
    return _saved(pdf)


def page_of_no_size() -> bytes:
    pdf = _story()
    pdf.pages[1].MediaBox = pikepdf.Array([0, 0, 1, 1])
    return _saved(pdf)


def truncated() -> bytes:
    whole = story_pdf("Cut short", pages=3)
    return whole[:60]


def zip_named_pdf() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("book.pdf", story_pdf("Inside a zip"))
    return out.getvalue()


def _with_link_action(action: pikepdf.Dictionary) -> bytes:
    pdf = _story()
    link = pikepdf.Dictionary(
        Type=pikepdf.Name.Annot,
        Subtype=pikepdf.Name.Link,
        Rect=pikepdf.Array([0, 0, 100, 100]),
        A=action,
    )
    pdf.pages[0].Annots = pdf.make_indirect(pikepdf.Array([pdf.make_indirect(link)]))
    return _saved(pdf)


def goto_a_remote_file() -> bytes:
    return _with_link_action(
        pikepdf.Dictionary(
            S=pikepdf.Name.GoToR, F=pikepdf.String("\\\\evil.example\\share\\x.pdf"), D=[0]
        )
    )


def javascript_uri() -> bytes:
    return _with_link_action(
        pikepdf.Dictionary(S=pikepdf.Name.URI, URI=pikepdf.String("javascript:alert(1)"))
    )


def file_uri() -> bytes:
    return _with_link_action(
        pikepdf.Dictionary(S=pikepdf.Name.URI, URI=pikepdf.String(" FILE:///etc/passwd"))
    )


def zip_after_the_header() -> bytes:
    """`%PDF-1.7`, then a ZIP holding a PDF: qpdf repairs its way to the PDF inside,
    while an unzipper sees an archive (a polyglot)."""
    return b"%PDF-1.7\n" + zip_named_pdf()


def a_web_link() -> bytes:
    """A link to a web page: allowed."""
    return _with_link_action(
        pikepdf.Dictionary(S=pikepdf.Name.URI, URI=pikepdf.String("https://stories.example/"))
    )


# Each hostile sample and the refusal codes it may get (a truncated file can fail
# to parse or parse to nothing, depending on where it was cut).
HOSTILE: dict[str, tuple[Callable[[], bytes], set[str]]] = {
    "javascript on open": (javascript_on_open, {"manuscript-active-content"}),
    "javascript in names": (javascript_in_names, {"manuscript-active-content"}),
    "launch action": (launch_in_a_link, {"manuscript-active-content"}),
    "embedded file": (embedded_file, {"manuscript-active-content"}),
    "rich media": (rich_media, {"manuscript-active-content"}),
    "xfa form": (xfa_form, {"manuscript-active-content"}),
    "encrypted, password": (encrypted_with_a_password, {"manuscript-encrypted"}),
    "encrypted, no password": (encrypted_without_one, {"manuscript-encrypted"}),
    "10,000 pages": (ten_thousand_pages, {"manuscript-too-many-pages"}),
    "image bomb": (image_bomb, {"manuscript-image-too-large"}),
    "page of no size": (page_of_no_size, {"manuscript-bad-page-size"}),
    "truncated": (
        truncated,
        {"manuscript-unreadable", "manuscript-no-pages", "manuscript-unrenderable"},
    ),
    "zip named .pdf": (zip_named_pdf, {"manuscript-unreadable"}),
    # #37 F7: these passed the check.
    "goto a remote file": (goto_a_remote_file, {"manuscript-active-content"}),
    "javascript: link": (javascript_uri, {"manuscript-active-content"}),
    "file: link": (file_uri, {"manuscript-active-content"}),
    "zip after the header": (zip_after_the_header, {"manuscript-unreadable"}),
}

"""The gallery page of `weakloc localize`, rendered by a real headless browser (Debian's chromium).

The page is loaded from disk (file://), its scripts run, and the DOM the browser ends with is
read back with --dump-dom. Skipped, saying why, where no chromium is installed (`.ci/run`
installs it where it runs as root).
"""

from __future__ import annotations

import csv
import html
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from factories import photo, random_checkpoint
from weakloc.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install -y chromium; .ci/run does this as root)")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A localize run on five images (one of them TIFF, one with a space and a '#' in its name)."""
    root = tmp_path_factory.mktemp("gallery")
    random_checkpoint(root / "wcbnet.pt")
    d = root / "photos"
    d.mkdir()
    for i, name in enumerate(["beach.jpg", "city.png", "scan.tif", "my photo #2.jpg", "zebra.webp"]):
        Image.fromarray(photo(48 + 8 * i, 64 - 4 * i, i)).save(d / name)
    (d / "broken.jpg").write_bytes(b"not a jpeg")
    out = root / "out"
    status = main(["localize", str(d), "--checkpoint", str(root / "wcbnet.pt"), "--out", str(out)])
    assert status == 1  # broken.jpg is reported, the others are written
    rows = list(csv.DictReader(open(out / "scores.csv", encoding="utf-8")))
    assert len(rows) == 5
    return out, rows


class Cards(HTMLParser):
    """The gallery's cards in DOM order, the body's data-sort and every image source."""

    def __init__(self):
        super().__init__()
        self.ids, self.verdicts, self.srcs, self.sort = [], [], [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "article" and "card" in a.get("class", ""):
            self.ids.append(a["data-id"])
            self.verdicts.append(a["data-verdict"])
        elif tag == "img" and a.get("src"):
            self.srcs.append(a["src"])
        elif tag == "body":
            self.sort = a.get("data-sort")


def rendered(page: Path, fragment: str, tmp_path: Path) -> Cards:
    """The DOM chromium ends with after loading ``page#fragment`` from disk."""
    url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    parser = Cards()
    parser.feed(proc.stdout)
    return parser


@needs_chromium
@pytest.mark.parametrize("fragment", ["", "sort=score-asc", "sort=score-desc", "sort=name"])
def test_browser_shows_every_image_in_the_requested_order(run, fragment, tmp_path):
    out, rows = run
    dom = rendered(out / "index.html", fragment, tmp_path)
    key = fragment.partition("=")[2] or "score-desc"
    assert dom.sort == key  # the page's script ran and applied the order
    by_score = sorted(rows, key=lambda r: (float(r["score"]), r["id"]))
    expected = {"score-asc": [r["id"] for r in by_score],
                "score-desc": [r["id"] for r in sorted(rows, key=lambda r: (-float(r["score"]), r["id"]))],
                "name": sorted(r["id"] for r in rows)}[key]
    assert dom.ids == expected
    verdict = {r["id"]: r["verdict"] for r in rows}
    assert dom.verdicts == [verdict[i] for i in dom.ids]


def test_page_is_self_contained_and_names_the_run(run):
    from urllib.parse import unquote

    out, rows = run
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and "<link" not in page  # no network asset
    parser = Cards()
    parser.feed(page)
    # photo, overlay and mask of every image, each a file of the output folder, relative to the page
    assert len(parser.srcs) == 3 * len(rows)
    for src in parser.srcs:
        assert "/" not in unquote(src) and (out / unquote(src)).is_file()
    for r in rows:
        for col in ("photo", "overlay", "mask"):
            assert r[col] in {unquote(s) for s in parser.srcs}
    assert str(out.parent / "wcbnet.pt") in page  # the checkpoint
    assert "0.5 fallback" in page  # this checkpoint stores no operating point, and the page says so
    assert "broken.jpg" in page  # the file that could not be read
    assert '"fusion": "attention"' in html.unescape(page)  # the settings

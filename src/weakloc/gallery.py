"""The gallery page of a ``weakloc localize`` run: ``OUT/index.html``.

One self-contained HTML file: inline CSS and JavaScript, no asset from the network, no
server; the images are the run's own files, referenced relative to the page, so the folder
can be moved or copied as a whole. Per image: the photo (``<id>_photo.jpg``), the overlay
and the mask, the image score and the verdict. At the top: the checkpoint, the operating
point of the verdict (and whether it was chosen on validation data or is the 0.5 fallback),
the run's settings, its seconds per image by stage and any file that could not be read.

Sorting: the page is written most suspicious first; buttons re-sort it by score (either
way) or by name, and the order is kept in the address's fragment, so ``index.html#sort=score-asc``,
``#sort=score-desc`` and ``#sort=name`` open the page in that order (ties by id). Clicking
an image shows it enlarged; a click or Escape closes it.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from urllib.parse import quote

from weakloc.io import write_text_atomic

SORT_KEYS = ("score-desc", "score-asc", "name")

_CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f4;color:#222}
header{background:#263238;color:#eee;padding:12px 20px}
header h1{margin:0 0 6px;font-size:1.3em}
header dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:6px 0}
header dt{color:#9fb3bd}header dd{margin:0;word-break:break-all}
header details pre{background:#1b2428;padding:8px;overflow:auto;max-height:320px;font-size:.8em}
.warn{color:#ffcc80}.fail{color:#ef9a9a}
nav{padding:8px 20px;position:sticky;top:0;background:#fafafa;border-bottom:1px solid #ddd;z-index:1}
nav button{margin-right:6px;padding:4px 10px;border:1px solid #999;background:#fff;border-radius:4px;cursor:pointer}
nav button.active{background:#263238;color:#fff}
main{display:flex;flex-direction:column;gap:12px;padding:12px 20px}
.card{background:#fff;border-radius:6px;box-shadow:0 1px 3px #0003;padding:10px}
.card h2{font-size:1em;margin:0 0 6px;display:flex;gap:12px;align-items:center;flex-wrap:wrap}
.verdict{padding:2px 8px;border-radius:10px;font-size:.85em;color:#fff}
.verdict.manipulated{background:#c62828}.verdict.authentic{background:#2e7d32}
.row{display:flex;gap:8px;flex-wrap:wrap}
figure{margin:0;text-align:center;font-size:.8em;color:#555}
figure img{height:220px;max-width:100%;object-fit:contain;background:#eee;cursor:zoom-in;display:block}
#lightbox{position:fixed;inset:0;background:#000d;display:none;align-items:center;justify-content:center;z-index:9;cursor:zoom-out}
#lightbox.open{display:flex}#lightbox img{max-width:96vw;max-height:92vh;background:#fff}
#lightbox p{position:absolute;top:4px;left:12px;color:#fff;margin:0}
"""

_JS = """
(function(){
  var grid=document.getElementById('cards');
  var cmp={
    'score-desc':function(a,b){return (b.dataset.score-a.dataset.score)||byId(a,b);},
    'score-asc':function(a,b){return (a.dataset.score-b.dataset.score)||byId(a,b);},
    'name':byId};
  function byId(a,b){var x=a.dataset.id,y=b.dataset.id;return x<y?-1:(x>y?1:0);}
  function current(){var m=/(?:^#|&)sort=([a-z-]+)/.exec(location.hash);return (m&&cmp[m[1]])?m[1]:'score-desc';}
  function apply(){
    var key=current(),cards=Array.prototype.slice.call(grid.children);
    cards.sort(cmp[key]);cards.forEach(function(c){grid.appendChild(c);});
    document.body.setAttribute('data-sort',key);
    Array.prototype.forEach.call(document.querySelectorAll('nav button'),function(b){
      b.classList.toggle('active',b.dataset.sort===key);});
  }
  Array.prototype.forEach.call(document.querySelectorAll('nav button'),function(b){
    b.addEventListener('click',function(){location.hash='sort='+b.dataset.sort;});});
  window.addEventListener('hashchange',apply);
  var box=document.getElementById('lightbox'),big=box.querySelector('img'),cap=box.querySelector('p');
  grid.addEventListener('click',function(e){
    var t=e.target;if(t.tagName!=='IMG')return;
    big.src=t.getAttribute('src');cap.textContent=t.alt;box.classList.add('open');});
  box.addEventListener('click',function(){box.classList.remove('open');});
  document.addEventListener('keydown',function(e){if(e.key==='Escape')box.classList.remove('open');});
  apply();
})();
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _src(name: str) -> str:
    """A file of the output folder as a URL relative to the page."""
    return quote(name)


def _card(row: dict) -> str:
    image_id, verdict = row["id"], row["verdict"]
    figures = "".join(
        f'<figure><img src="{_src(row[key])}" alt="{_e(image_id)}: {label}" loading="lazy">'
        f"<figcaption>{label}</figcaption></figure>"
        for key, label in (("photo", "photo"), ("overlay", "overlay (red = map)"), ("mask", "mask (map > 0.5)")))
    return (f'<article class="card" data-id="{_e(image_id)}" data-score="{_e(row["score"])}" '
            f'data-verdict="{_e(verdict)}">'
            f'<h2><span class="id">{_e(image_id)}</span><span class="score">score {_e(row["score"])}</span>'
            f'<span class="verdict {_e(verdict)}">{_e(verdict)}</span>'
            f'<span class="size">{_e(row.get("width", ""))}x{_e(row.get("height", ""))} px</span></h2>'
            f'<div class="row">{figures}</div></article>')


def _timing_text(timing: dict | None) -> str:
    """This run's seconds per image by stage (``run.json``'s ``timing``)."""
    if not timing:
        return "not recorded"
    if not timing["images_computed"]:
        return f"every image from an earlier run ({timing['images_resumed']}); nothing computed"
    stages = ", ".join(f"{k} {v:.2f}" for k, v in timing["seconds_per_image"].items())
    text = (f"{timing['wall_seconds_per_image']:.2f} s per image over {timing['images_computed']} computed "
            f"(by stage, s: {stages}; segmented {timing['images_segmented']} of {timing['images_computed']})")
    if timing["images_resumed"]:
        text += f"; {timing['images_resumed']} from an earlier run"
    return _e(text)


def gallery_html(rows: list[dict], run: dict) -> str:
    """The page for ``rows`` (``localize``'s per-image rows) and ``run`` (its ``run.json``)."""
    ckpt = run["checkpoint"]
    meta = ckpt.get("meta", {})
    op = run["operating_point"]
    if op["source"] == "validation":
        chosen = op.get("chosen", {})
        op_text = (f"score &gt; {op['threshold']:.4f}, chosen on the validation split "
                   f"({_e(chosen.get('criterion', ''))}: TPR {chosen.get('tpr', float('nan')):.3f}, "
                   f"FPR {chosen.get('fpr', float('nan')):.3f})")
    else:
        op_text = (f'<span class="warn">score &gt; {op["threshold"]:.2f}: this checkpoint stores no '
                   "operating point chosen on validation data, so the verdict uses the 0.5 fallback</span>")
    val_auc = meta.get("val_auc")
    model = _e(ckpt["path"]) + (" (the released model that ships with weakloc, docs/model-card.md)"
                                 if ckpt.get("release") else "")
    facts = [("checkpoint", model),
             ("trained", "not recorded in the checkpoint" if meta.get("epoch") is None else
              f"best epoch {_e(meta['epoch'])}, validation AUC {'n/a' if val_auc is None else f'{val_auc:.4f}'}"),
             ("verdict", op_text),
             ("maps", f"fusion {_e(run['settings']['fusion'])}, segmenters "
                      f"{_e(', '.join(run['settings']['segmenters']) or 'none (no refinement)')}, decision "
                      f"{_e(run['settings']['refine']['decision']['rule'])}"),
             ("settings", f"from {_e(run.get('settings_from', 'not recorded'))}"),
             ("images", f"{len(rows)} localized" + (f', <span class="fail">{len(run["failures"])} could not be '
                                                     "read</span>" if run["failures"] else "")),
             ("time", _timing_text(run.get("timing"))),
             ("weakloc", _e(run.get("weakloc", "")))]
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    failures = "".join(f'<li class="fail">{_e(f)}</li>' for f in run["failures"])
    settings = _e(json.dumps(run["settings"], indent=2, sort_keys=True, default=str))
    ordered = sorted(rows, key=lambda r: (-float(r["score"]), r["id"]))
    buttons = "".join(f'<button type="button" data-sort="{k}">{label}</button>' for k, label in
                      (("score-desc", "most suspicious first"), ("score-asc", "least suspicious first"),
                       ("name", "by name")))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>weakloc localize: {len(rows)} images</title><style>{_CSS}</style></head>"
        f"<body data-sort=\"\"><header><h1>weakloc localize: {len(rows)} images</h1><dl>{dl}</dl>"
        + (f"<ul>{failures}</ul>" if failures else "")
        + f"<details><summary>settings</summary><pre>{settings}</pre></details></header>"
        f"<nav>sort: {buttons}</nav><main id=\"cards\">{''.join(_card(r) for r in ordered)}</main>"
        "<div id=\"lightbox\"><p></p><img alt=\"\"></div>"
        f"<script>{_JS}</script></body></html>\n")


def write_gallery(out_dir: str | Path, rows: list[dict], run: dict) -> Path:
    """Write ``out_dir/index.html`` atomically; returns its path."""
    path = Path(out_dir) / "index.html"
    write_text_atomic(path, gallery_html(rows, run))
    return path

"""Open every chapter's HTML in headless Chromium: no broken image or video, no console
error, a real screenshot. Skipped where Chromium is not installed."""

import re
import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--virtual-time-budget=15000"]

# Appended to a copy of each page: counts images that failed to decode and videos whose
# media did not load, and writes the result into the DOM for --dump-dom to return.
CHECK = """
<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const vids = [...document.querySelectorAll('video')];
  Promise.all(vids.map(v => new Promise(done => {
    if (v.readyState >= 1) return done(v.error ? 1 : 0);
    v.addEventListener('loadedmetadata', () => done(0));
    v.addEventListener('error', () => done(1), true);
    setTimeout(() => done(v.readyState >= 1 ? 0 : 1), 8000);
  }))).then(errs => {
    const d = document.createElement('pre');
    d.id = 'browser-check';
    d.textContent = `images=${imgs.length} broken=${broken} videos=${vids.length} video_errors=${errs.reduce((a, b) => a + b, 0)}`;
    document.body.appendChild(d);
  });
});
</script>
"""


def test_every_chapter_loads_in_chromium_without_errors(smoke_preview, tmp_path):
    out, _, written = smoke_preview
    for page in written:
        checked = tmp_path / page.name
        checked.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
        profile = tmp_path / f"profile-{page.stem}"
        run = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                              "--dump-dom", checked.as_uri()], capture_output=True, text=True, timeout=120)
        m = re.search(r"images=(\d+) broken=(\d+) videos=(\d+) video_errors=(\d+)", run.stdout)
        assert m, f"{page.name}: the check did not run ({run.stderr[-500:]})"
        images, broken, videos, video_errors = map(int, m.groups())
        assert broken == 0 and video_errors == 0, f"{page.name}: {m.group(0)}"
        # Any console message is suspect (the pages log nothing when healthy), except remote
        # resources the offline preview cannot fetch (MathJax, fonts).
        errors = [line for line in run.stderr.splitlines() if "CONSOLE" in line
                  and "Failed to load resource" not in line and "net::ERR" not in line]
        assert not errors, f"{page.name}: console errors: {errors[:3]}"
        shot = tmp_path / f"{page.stem}.png"
        subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--window-size=1200,2000",
                        f"--screenshot={shot}", checked.as_uri()], capture_output=True, timeout=120)
        assert shot.is_file() and shot.stat().st_size > 20_000, f"{page.name}: no real screenshot"
    assert "report-weight-distribution.html" in [p.name for p in written]

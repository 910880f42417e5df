#!/bin/sh
# report_browser.sh REPORT.html [SCREENSHOT.png]: opens a `clasp report` page in headless
# Chromium with the #selftest fragment and prints the status the page's own check wrote into
# <pre id="selftest"> ("SELFTEST OK: N charts" or "SELFTEST FAIL: reasons": a chart whose
# canvas lacks one of its series' colours, a script error). With SCREENSHOT, also writes a
# PNG of the page (1280 px wide) for people to look at.
# Exit 0: OK; 1: FAIL; 2: no status (the page's script did not run) or no Chromium.
set -u
html="$1"
shot="${2:-}"
chrome="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$chrome" ]; then
    echo "report_browser.sh: chromium not found (Debian package chromium)" >&2
    exit 2
fi
case "$html" in /*) url="file://$html" ;; *) url="file://$PWD/$html" ;; esac
flags="--headless --no-sandbox --disable-gpu --hide-scrollbars --mute-audio --no-first-run"
# $flags is split into words on purpose
# shellcheck disable=SC2086
# virtual time lets the page's timers (the self-test runs 200 ms after the load event) finish first
status="$("$chrome" $flags --window-size=1280,900 --virtual-time-budget=5000 \
    --dump-dom "$url#selftest" 2>/dev/null | sed -n 's/.*<pre id="selftest"[^>]*>\([^<]*\).*/\1/p')"
if [ -n "$shot" ]; then
    # shellcheck disable=SC2086
    "$chrome" $flags --window-size=1280,2400 --virtual-time-budget=5000 --screenshot="$shot" \
        "$url" >/dev/null 2>&1
fi
if [ -z "$status" ]; then
    echo "report_browser.sh: $html: no self-test status in the page" >&2
    exit 2
fi
echo "$status"
case "$status" in "SELFTEST OK"*) exit 0 ;; *) exit 1 ;; esac

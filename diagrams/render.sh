#!/usr/bin/env bash
# Re-renders every diagrams/*.mmd into the .svg beside it.
#
#   diagrams/render.sh           render the diagrams whose source changed
#   diagrams/render.sh --force   render all of them (after changing the style below)
#
# Tools: Mermaid's CLI (npm, installed once into a cache directory outside the repository,
# without Puppeteer's browser download) driven by Debian's Chromium. Missing pieces are
# installed on first use (`apt-get install chromium nodejs npm`, as root or with sudo).
# Each SVG starts with `<!-- source-sha256: HEX -->`, the sha256 of its source: the test
# tests/diagrams.rs recomputes it, so an edited source without a re-render fails the build,
# and this script skips diagrams whose SVG already carries the current hash.
set -euo pipefail

MERMAID_CLI_VERSION=11.17.0
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/actorftpd-mermaid"
chromium="${CHROMIUM:-/usr/bin/chromium}"
force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

apt_install() {
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "render.sh: installing $* (Debian packages)" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

[ -x "$chromium" ] || apt_install chromium
command -v npm >/dev/null || apt_install nodejs npm

mmdc="$cache/node_modules/.bin/mmdc"
stamp="$cache/installed-$MERMAID_CLI_VERSION"
if [ ! -f "$stamp" ] || [ ! -x "$mmdc" ]; then
  echo "render.sh: installing @mermaid-js/mermaid-cli@$MERMAID_CLI_VERSION into $cache" >&2
  mkdir -p "$cache"
  [ -f "$cache/package.json" ] || echo '{ "private": true }' >"$cache/package.json"
  # The browser download fails here (and is not needed): Chromium comes from Debian.
  (cd "$cache" && PUPPETEER_SKIP_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error \
    "@mermaid-js/mermaid-cli@$MERMAID_CLI_VERSION")
  rm -f "$cache"/installed-*
  touch "$stamp"
fi

cat >"$cache/puppeteer.json" <<EOF
{
  "executablePath": "$chromium",
  "args": ["--no-sandbox", "--disable-gpu", "--headless"]
}
EOF

# The style of every diagram. Labels are plain SVG text (no HTML in foreignObject), so the
# SVGs read the same in browsers, on GitHub and in rsvg-based viewers. A fixed seed for the
# shapes Mermaid draws with rough.js keeps the output byte-for-byte reproducible.
cat >"$cache/mermaid.json" <<'EOF'
{
  "theme": "neutral",
  "themeVariables": { "noteBkgColor": "#fff8d6", "noteTextColor": "#222222", "noteBorderColor": "#c8b25a" },
  "htmlLabels": false,
  "fontFamily": "Verdana, 'DejaVu Sans', Arial, sans-serif",
  "markdownAutoWrap": false,
  "handDrawnSeed": 1,
  "flowchart": { "htmlLabels": false, "curve": "basis", "padding": 12, "wrappingWidth": 480 },
  "sequence": { "showSequenceNumbers": false, "mirrorActors": false, "wrap": false },
  "state": { "htmlLabels": false }
}
EOF

# A change of this script (renderer version, style, post-processing) re-renders everything.
style=$(cat "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)

rendered=0
for src in "$here"/*.mmd; do
  svg="${src%.mmd}.svg"
  hash=$(sha256sum "$src" | cut -d' ' -f1)
  if [ "$force" -eq 0 ] && [ -f "$svg" ] \
    && head -n 1 "$svg" | grep -q "source-sha256: $hash" \
    && head -n 2 "$svg" | grep -q "style $style"; then
    continue
  fi
  tmp=$(mktemp "$cache/render-XXXXXX.svg")
  if ! "$mmdc" --quiet --input "$src" --output "$tmp" \
    --puppeteerConfigFile "$cache/puppeteer.json" --configFile "$cache/mermaid.json" \
    --backgroundColor white; then
    rm -f "$tmp"
    echo "render.sh: $(basename "$src") did not render" >&2
    exit 1
  fi
  if ! grep -q '<svg' "$tmp" || grep -q 'Syntax error in text' "$tmp"; then
    rm -f "$tmp"
    echo "render.sh: $(basename "$src") rendered as a Mermaid error" >&2
    exit 1
  fi
  # xml:space="preserve": Mermaid puts words in separate tspans with leading spaces, which
  # rsvg-based viewers would otherwise collapse; browsers render the same either way.
  sed -i '0,/<svg /s//<svg xml:space="preserve" /' "$tmp"
  {
    printf '<!-- source-sha256: %s -->\n' "$hash"
    printf '<!-- Rendered from %s by diagrams/render.sh (mermaid-cli %s, style %s); edit the source, not this file. -->\n' \
      "$(basename "$src")" "$MERMAID_CLI_VERSION" "$style"
    cat "$tmp"
    # mmdc ends the file without a newline.
    echo
  } >"$svg"
  rm -f "$tmp"
  rendered=$((rendered + 1))
  echo "render.sh: $(basename "$svg")"
done
echo "render.sh: $rendered rendered, all SVGs match their sources" >&2

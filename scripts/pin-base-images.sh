#!/usr/bin/env bash
# Pins the Dockerfile's base images by digest, and checks that they are.
#
#   scripts/pin-base-images.sh            rewrites every `FROM image:tag` of the Dockerfile to
#                                         `FROM image:tag@sha256:<digest of the tag now>`
#                                         (a pinned line is resolved again: this is also how
#                                         the pins are moved forward)
#   scripts/pin-base-images.sh --check    exits 1 naming every FROM line without a digest
#
# The digest is that of the tag's multi-platform index, as the registry serves it now, so one
# pin fits every platform the image is built for. The registry is asked with the first of
# `crane digest`, `docker buildx imagetools inspect` or `skopeo inspect` found on PATH (or the
# command in $TIDEMARK_DIGEST_COMMAND, given the image reference as its one argument and
# printing the digest). `${ARG}`s in FROM lines are expanded with the ARG defaults above them.
# Update routine (docs/security.md, "Base images"): run this on a machine that reaches the
# registry, build, run the tests, commit the Dockerfile with the digests in the message.
set -euo pipefail

dockerfile="${DOCKERFILE:-$(dirname "$0")/../Dockerfile}"
mode=pin
case "${1:-}" in
  --check) mode=check ;;
  "") ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

resolve() {
  local image=$1 digest=""
  if [ -n "${TIDEMARK_DIGEST_COMMAND:-}" ]; then
    digest=$($TIDEMARK_DIGEST_COMMAND "$image")
  elif command -v crane >/dev/null; then
    digest=$(crane digest "$image")
  elif command -v docker >/dev/null && docker buildx version >/dev/null 2>&1; then
    digest=$(docker buildx imagetools inspect --format '{{json .Manifest.Digest}}' "$image" | tr -d '"')
  elif command -v skopeo >/dev/null; then
    digest=$(skopeo inspect --raw "docker://$image" | sha256sum | cut -d' ' -f1)
    digest="sha256:$digest"
  else
    echo "error: no way to ask the registry for $image: install crane, docker buildx or skopeo, or set TIDEMARK_DIGEST_COMMAND" >&2
    return 1
  fi
  if ! [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]]; then
    echo "error: the registry answered '$digest' for $image, not a sha256 digest" >&2
    return 1
  fi
  printf '%s\n' "$digest"
}

declare -A args=()
unpinned=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
  lineno=$((lineno + 1))
  if [[ $line =~ ^ARG[[:space:]]+([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]]; then
    args[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
  fi
  if [[ $line =~ ^FROM[[:space:]]+([^[:space:]]+)(.*)$ ]]; then
    ref=${BASH_REMATCH[1]}
    rest=${BASH_REMATCH[2]}
    image=${ref%@*}
    if [ "$mode" = check ]; then
      if [[ $ref != *@sha256:* ]]; then
        echo "$dockerfile:$lineno: FROM $ref is not pinned by digest" >&2
        unpinned=$((unpinned + 1))
      fi
    else
      expanded=$image
      for name in "${!args[@]}"; do
        expanded=${expanded//\$\{$name\}/${args[$name]}}
      done
      if [[ $expanded == *'$'* ]]; then
        echo "error: $dockerfile:$lineno: cannot expand $image (an ARG without a default)" >&2
        exit 1
      fi
      digest=$(resolve "$expanded")
      echo "$expanded -> $digest" >&2
      line="FROM $image@$digest$rest"
    fi
  fi
  printf '%s\n' "$line" >>"$out"
done <"$dockerfile"

if [ "$mode" = check ]; then
  [ "$unpinned" -eq 0 ] || exit 1
  echo "every FROM of $dockerfile is pinned by digest"
else
  cat "$out" >"$dockerfile"
fi

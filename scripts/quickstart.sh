#!/usr/bin/env bash
# The quick start: sets the machine up, starts unid on a fresh data dir and
# runs a demo VM (the test kernel) on it, then keeps unid in the foreground.
# Ctrl-C stops unid, which stops its VMs.
#   UNI_HOME=/path scripts/quickstart.sh   # another data dir
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
bin=$(swift build --show-bin-path)
export UNI_HOME=${UNI_HOME:-$(mktemp -d /tmp/uni-demo-XXXXXX)}
"$bin/unid" --data-dir "$UNI_HOME" &
unid_pid=$!
trap 'kill -TERM $unid_pid 2>/dev/null; wait $unid_pid 2>/dev/null' EXIT
for _ in $(seq 1 100); do [ -S "$UNI_HOME/unid.sock" ] && break; sleep 0.1; done
"$bin/uni" run --name demo --memory 64M -e GREETING=hello --cmdline "lines=3 env" .build/guests/uni-test-kernel.elf
sleep 0.5
"$bin/uni" ps
echo "--- uni logs demo"
"$bin/uni" logs demo
cat <<TXT

unid runs with data dir $UNI_HOME (pid $unid_pid). In another shell:
  export UNI_HOME=$UNI_HOME
  $bin/uni ps -a
  $bin/uni stop demo
Ctrl-C here stops unid and its VMs.
TXT
wait $unid_pid

#!/usr/bin/env bash
# Restarts lose nothing with BFD on (300 ms × 3): the restarts scenario, every node's
# ipipd stopped with SIGTERM and with SIGKILL in turn, while the BFD sessions are Up.
# The BFD keeper (a process of its own, C bit set) keeps answering while ipipd is
# away, so no peer takes a restart for a node death: no echo unanswered, no wanted
# route deleted.
# vm-timeout: 300
RESTARTS_EXTRA=$'[bfd]\nenabled = true\ninterval_ms = 300\nmultiplier = 3'
source "$(dirname "${BASH_SOURCE[0]}")/restarts.sh"

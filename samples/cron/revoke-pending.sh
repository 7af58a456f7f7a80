#!/usr/bin/env bash
# Revoke whatever is listed in the drop file, from cron. Safe to start while the
# previous run is still going (exit 4: it holds the results file's lock), and
# safe after a crash or reboot (--resume skips what is already final).
#
# crontab (every 10 minutes, token from a root-only file):
#   */10 * * * * /opt/cfrevoke/revoke-pending.sh >>/var/log/cfrevoke/cron.log 2>&1
set -u
input=/var/lib/cfrevoke/pending.csv
results=/var/lib/cfrevoke/pending.results.csv
log=/var/log/cfrevoke/revoke.jsonl
# node_exporter --collector.textfile.directory: every run's outcome, for alerting.
textfile_dir=/var/lib/node_exporter/textfile_collector

[ -s "$input" ] || exit 0
resume=()
[ -e "$results" ] && resume=(--resume)

cfrevoke revoke "$input" --output "$results" "${resume[@]}" \
  --api-token-file /etc/cfrevoke/token --log-file "$log" --yes --quiet \
  --metrics-file "$textfile_dir/cfrevoke-revoke.prom"
code=$?
case $code in
  0)   echo "$(date -Is) all revoked" ;;
  1)   echo "$(date -Is) some rows failed or were not found: see $results" ;;
  2)   echo "$(date -Is) bad input or usage: nothing sent" ;;
  3)   echo "$(date -Is) credentials refused: fix the token in /etc/cfrevoke/token" ;;
  4)   echo "$(date -Is) previous run still going; will resume next time" ; code=0 ;;
  130) echo "$(date -Is) interrupted; the next run resumes" ;;
esac
exit "$code"

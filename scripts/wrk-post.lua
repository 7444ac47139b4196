-- wrk: every request a POST with an empty body (scripts/bench-disk-fill.sh).
wrk.method = "POST"
wrk.body = ""

complete -c pararun -s i -l input -d 'Read items from FILE instead of stdin (`-` is stdin)' -r -F
complete -c pararun -l format -d 'How to read items: `auto` picks jsonl when the first non-blank line starts with `{`' -r -f -a "auto\t'jsonl when the first non-blank line starts with `{`, else lines'
jsonl\t'One JSON value per line'
lines\t'Each line is an item, keyed by itself'"
complete -c pararun -l key-field -d 'The top-level field that keys a JSON item and every cache record' -r
complete -c pararun -l max-line-bytes -d 'The longest line read from the input or the cache, and the longest record written' -r
complete -c pararun -l shard -d 'Run only shard I of N: the items whose key hashes to I modulo N (0 <= I < N)' -r
complete -c pararun -s j -l jobs -d 'Children running at once [default: the number of CPUs]. Cut, with a warning, to what the open-file limit holds (4 descriptors a child; see `ulimit -Hn`)' -r
complete -c pararun -l pipeline -d 'With --persistent: how many items each worker holds at once, sent and not yet answered (it still reads one line and answers one line, in order). 1 sends the next item only after the last answer. A worker whose answers do not echo the key gets one at a time, and an ordered worker only about 20 ms of work ahead (by its measured time per item), so slow items are not queued behind one another; items sent while quick ones came stay with their worker, so give 1 when item times vary widely in no known order' -r
complete -c pararun -l protocol -d 'With --persistent: `ordered` answers one line per request line, in order; `concurrent` wraps each item as {"pararun_id": N, "item": ITEM} and takes answers {"pararun_id": N, "result": R} (or "error": MESSAGE) in any order (an async program)' -r -f -a "ordered\t'One answer line per request line, in order'
concurrent\t'Requests and answers carry a pararun_id; answers in any order'"
complete -c pararun -l rate -d 'Start at most N items per second, minute or hour (`10/s`, `100/m`, `5000/h`), evenly spaced; retries count too' -r
complete -c pararun -l burst -d 'With --rate: how many items may start back to back after a pause' -r
complete -c pararun -l cache -d 'The JSONL cache: keys found in it are skipped; each new result is appended as it arrives' -r -F
complete -c pararun -l capture -d 'What a child\'s stdout is: a JSON result, or text stored as a string' -r -f -a "json\t'The child\'s stdout is one JSON document, or its last JSON line'
text\t'The child\'s stdout, as a string, is the result'"
complete -c pararun -l max-output-bytes -d 'The most a child may print on stdout (a persistent worker: per answer line); past it the child is killed and the item fails as bad-output' -r
complete -c pararun -l fsync -d 'How hard each cache append is pushed to disk (against power loss, not crashes: a crash of pararun loses no finished result in any mode)' -r -f -a "always\t'fdatasync after every write of records, before any of them counts as done'
batch\t'fdatasync at most once a second, and at exit'
never\t'Leave it to the operating system'"
complete -c pararun -l lock-wait -d 'When another run holds the cache\'s lock, wait up to DUR for it (as `flock -w` does) instead of giving up at once; then exit as --conflict-exit-code says' -r
complete -c pararun -l conflict-exit-code -d 'The exit status when another run holds the cache\'s lock (as `flock -E` sets it)' -r
complete -c pararun -l retries -d 'Retry a failed item up to N more times; bad input is never retried' -r
complete -c pararun -l retry-delay -d 'Wait before the first retry, doubling (with jitter) on each further one, capped at 1m' -r
complete -c pararun -l timeout -d 'Per attempt: on expiry the child\'s process group gets SIGTERM, then SIGKILL after --kill-after' -r
complete -c pararun -l kill-after -d 'Grace between SIGTERM and SIGKILL, for timeouts and for shutdown' -r
complete -c pararun -l failures -d 'Append one JSON line per failed item to FILE (key, line, item, reason, stderr tail...)' -r -F
complete -c pararun -l max-failures -d 'After N failed items start nothing new, let running ones finish, and exit 1' -r
complete -c pararun -l give-up-after -d 'Skip an item once the --failures file records N failed attempts of it, across runs, so that an item that always fails stops failing every run (cron mails). Needs --failures' -r
complete -c pararun -l total -d 'The number of items, for the bar\'s ETA [default: counted in the background when the input is a regular file]' -r
complete -c pararun -l log-interval -d 'When stderr is not a terminal, print a plain progress line this often' -r
complete -c pararun -l stdin -d 'Write the item\'s input line to the child\'s stdin (otherwise stdin is /dev/null)'
complete -c pararun -l shell -d 'Run the command through `sh -c` even when given as several words'
complete -c pararun -l persistent -d 'Start COMMAND once per slot as a long-lived worker: each item goes to a free worker as one line on its stdin (the JSON line, or a JSON string for lines input), and the worker answers with one JSON line on stdout'
complete -c pararun -l dry-run -d 'Print each command that would run (after skipping cached keys), shell-quoted, one per line; run nothing and write nothing'
complete -c pararun -l halt-on-error -d 'Stop at the first failed item (the same as --max-failures 1)'
complete -c pararun -s q -l quiet -d 'Print no result records on stdout and no summary or progress on stderr (--no-records hides only the records)'
complete -c pararun -s k -l keep-order -d 'Print records on stdout in input order (the cache still gets them as they finish)'
complete -c pararun -l records -d 'Print the records on stdout even when stdout is a terminal and --cache keeps them'
complete -c pararun -l no-records -d 'Print no records on stdout, but the summary and progress as usual (-q hides all)'
complete -c pararun -l progress -d 'Show the progress bar even when stderr is not a terminal'
complete -c pararun -l no-progress -d 'Show no progress bar and no progress lines'
complete -c pararun -l timestamps -d 'Start each of pararun\'s own stderr lines with the local time, even on a terminal'
complete -c pararun -l no-timestamps -d 'Never timestamp stderr lines (e.g. when the log already adds its own, as journald does)'
complete -c pararun -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pararun -s V -l version -d 'Print version'

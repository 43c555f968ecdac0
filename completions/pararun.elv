
use builtin;
use str;

set edit:completion:arg-completer[pararun] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'pararun'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'pararun'= {
            cand -i 'Read items from FILE instead of stdin (`-` is stdin)'
            cand --input 'Read items from FILE instead of stdin (`-` is stdin)'
            cand --format 'How to read items: `auto` picks jsonl when the first non-blank line starts with `{`'
            cand --key-field 'The top-level field that keys a JSON item and every cache record'
            cand --max-line-bytes 'The longest line read from the input or the cache, and the longest record written'
            cand --shard 'Run only shard I of N: the items whose key hashes to I modulo N (0 <= I < N)'
            cand -j 'Children running at once [default: the number of CPUs]'
            cand --jobs 'Children running at once [default: the number of CPUs]'
            cand --pipeline 'With --persistent: how many items each worker holds at once, sent and not yet answered; 1 waits for each answer (give 1 when item times vary widely in no known order)'
            cand --protocol 'With --persistent: `ordered` answers one line per request line, in order; `concurrent` wraps each item as {"pararun_id": N, "item": ITEM} and takes answers {"pararun_id": N, "result": R} (or "error": MESSAGE) in any order (an async program)'
            cand --rate 'Start at most N items per second, minute or hour (`10/s`, `100/m`, `5000/h`), evenly spaced; retries count too'
            cand --burst 'With --rate: how many items may start back to back after a pause'
            cand --cache 'The JSONL cache: keys found in it are skipped; each new result is appended as it arrives'
            cand --capture 'What a child''s stdout is: a JSON result, or text stored as a string'
            cand --max-output-bytes 'The most a child may print on stdout (a persistent worker: per answer line); past it the child is killed and the item fails as bad-output'
            cand --fsync 'How hard each cache append is pushed to disk (against power loss, not crashes: a crash of pararun loses no finished result in any mode)'
            cand --lock-wait 'When another run holds the cache''s lock, wait up to DUR for it (as `flock -w` does) instead of giving up at once; then exit as --conflict-exit-code says'
            cand --conflict-exit-code 'The exit status when another run holds the cache''s lock (as `flock -E` sets it)'
            cand --retries 'Retry a failed item up to N more times; bad input is never retried'
            cand --retry-delay 'Wait before the first retry, doubling (with jitter) on each further one, capped at 1m'
            cand --timeout 'Per attempt: on expiry the child''s process group gets SIGTERM, then SIGKILL after --kill-after'
            cand --kill-after 'Grace between SIGTERM and SIGKILL, for timeouts and for shutdown'
            cand --failures 'Append one JSON line per failed item to FILE (key, line, item, reason, stderr tail...)'
            cand --max-failures 'After N failed items start nothing new, let running ones finish, and exit 1'
            cand --give-up-after 'Skip an item once the --failures file records N failed attempts of it, across runs, so that an item that always fails stops failing every run (cron mails). Needs --failures'
            cand --throttle-exit-code 'The exit code by which a child says "throttled, slow down" (75 is EX_TEMPFAIL)'
            cand --max-throttled 'Fail an item as `throttled` when it is throttled more than N times'
            cand --total 'The number of items, for the bar''s ETA [default: counted in the background when the input is a regular file]'
            cand --log-interval 'When stderr is not a terminal, print a plain progress line this often'
            cand --stdin 'Write the item''s input line to the child''s stdin (otherwise stdin is /dev/null)'
            cand --shell 'Run the command through `sh -c` even when given as several words'
            cand --persistent 'Start COMMAND once per slot as a long-lived worker: each item goes to a free worker as one line on its stdin (the JSON line, or a JSON string for lines input), and the worker answers with one JSON line on stdout'
            cand --adaptive 'Make -j a ceiling: start at 1 and double while nothing is throttled, then cut the number running at once on a throttle and raise it by one after a window of successes'
            cand --dry-run 'Print each command that would run (after skipping cached keys), shell-quoted, one per line; run nothing and write nothing'
            cand --halt-on-error 'Stop at the first failed item (the same as --max-failures 1)'
            cand -q 'Print no result records on stdout and no summary or progress on stderr (--no-records hides only the records)'
            cand --quiet 'Print no result records on stdout and no summary or progress on stderr (--no-records hides only the records)'
            cand -k 'Print records on stdout in input order (the cache still gets them as they finish)'
            cand --keep-order 'Print records on stdout in input order (the cache still gets them as they finish)'
            cand --tag 'Start each line a child writes to stderr with its item''s key and a tab, as GNU parallel''s --tag does, so that the lines of many children can be told apart'
            cand --records 'Print the records on stdout even when stdout is a terminal and --cache keeps them'
            cand --no-records 'Print no records on stdout, but the summary and progress as usual (-q hides all)'
            cand --progress 'Show the progress bar even when stderr is not a terminal'
            cand --no-progress 'Show no progress bar and no progress lines'
            cand --timestamps 'Start each of pararun''s own stderr lines with the local time, even on a terminal'
            cand --no-timestamps 'Never timestamp stderr lines (e.g. when the log already adds its own, as journald does)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand status 'How far a job is: done, failed, given up, remaining, in flight, live or ended'
            cand failures 'The items failing now: their latest attempt failed and they have no record since'
            cand merge 'Merges caches into one (OUT): one record per key, whole records only'
            cand check 'What a cache holds that a run would skip or warn about'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pararun;status'= {
            cand --failures 'A failures file, besides those the runs'' state files name (a glob is expanded; give the flag once per file)'
            cand -i 'The job''s input, to count what remains [default: the runs'' own, when it is a file]'
            cand --input 'The job''s input, to count what remains [default: the runs'' own, when it is a file]'
            cand --format 'How to read the input [default: as the runs did]'
            cand --total 'The input''s item count, when the input is not at hand'
            cand --key-field 'The field that keys items and records [default: the run''s own, else `id`]'
            cand --max-line-bytes 'The longest line read'
            cand --give-up-after 'Items with N failed attempts count as given up [default: the runs'' own]'
            cand --json 'Print one JSON object: done, failed, given_up, remaining, in_flight, running, rate_per_s, eta_s, reasons, and shards (one object per cache with the same fields)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'pararun;failures'= {
            cand --failures 'A failures file [default: those the caches'' runs name]; give the flag once per file'
            cand --key-field 'The field that keys items and records [default: the run''s own, else `id`]'
            cand --max-line-bytes 'The longest line read'
            cand --items 'Print only the failing items'' input lines, one per line'
            cand --json 'Print one JSON object per failing item'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'pararun;merge'= {
            cand -o 'The merged cache'
            cand --output 'The merged cache'
            cand --prefer 'Which record of a conflicting key to keep'
            cand -i 'Report the keys of this input that are in no cache'
            cand --input 'Report the keys of this input that are in no cache'
            cand --format 'How to read the input [default: as the runs did]'
            cand --key-field 'The field that keys items and records [default: the run''s own, else `id`]'
            cand --max-line-bytes 'The longest line read'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'pararun;check'= {
            cand --key-field 'The field that keys items and records [default: the run''s own, else `id`]'
            cand --max-line-bytes 'The longest line read'
            cand --repair 'Write a clean copy and rename it into place, keeping the original as CACHE.bak'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'pararun;help'= {
            cand status 'How far a job is: done, failed, given up, remaining, in flight, live or ended'
            cand failures 'The items failing now: their latest attempt failed and they have no record since'
            cand merge 'Merges caches into one (OUT): one record per key, whole records only'
            cand check 'What a cache holds that a run would skip or warn about'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pararun;help;status'= {
        }
        &'pararun;help;failures'= {
        }
        &'pararun;help;merge'= {
        }
        &'pararun;help;check'= {
        }
        &'pararun;help;help'= {
        }
    ]
    $completions[$command]
}

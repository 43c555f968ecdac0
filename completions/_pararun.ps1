
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'pararun' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'pararun'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'pararun' {
            [CompletionResult]::new('-i', '-i', [CompletionResultType]::ParameterName, 'Read items from FILE instead of stdin (`-` is stdin)')
            [CompletionResult]::new('--input', '--input', [CompletionResultType]::ParameterName, 'Read items from FILE instead of stdin (`-` is stdin)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'How to read items: `auto` picks jsonl when the first non-blank line starts with `{`')
            [CompletionResult]::new('--key-field', '--key-field', [CompletionResultType]::ParameterName, 'The top-level field that keys a JSON item and every cache record')
            [CompletionResult]::new('--max-line-bytes', '--max-line-bytes', [CompletionResultType]::ParameterName, 'The longest line read from the input or the cache, and the longest record written')
            [CompletionResult]::new('--shard', '--shard', [CompletionResultType]::ParameterName, 'Run only shard I of N: the items whose key hashes to I modulo N (0 <= I < N)')
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Children running at once [default: the number of CPUs]')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Children running at once [default: the number of CPUs]')
            [CompletionResult]::new('--pipeline', '--pipeline', [CompletionResultType]::ParameterName, 'With --persistent: how many items each worker holds at once, sent and not yet answered; 1 waits for each answer (give 1 when item times vary widely in no known order)')
            [CompletionResult]::new('--protocol', '--protocol', [CompletionResultType]::ParameterName, 'With --persistent: `ordered` answers one line per request line, in order; `concurrent` wraps each item as {"pararun_id": N, "item": ITEM} and takes answers {"pararun_id": N, "result": R} (or "error": MESSAGE) in any order (an async program)')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'Start at most N items per second, minute or hour (`10/s`, `100/m`, `5000/h`), evenly spaced; retries count too')
            [CompletionResult]::new('--burst', '--burst', [CompletionResultType]::ParameterName, 'With --rate: how many items may start back to back after a pause')
            [CompletionResult]::new('--cache', '--cache', [CompletionResultType]::ParameterName, 'The JSONL cache: keys found in it are skipped; each new result is appended as it arrives')
            [CompletionResult]::new('--capture', '--capture', [CompletionResultType]::ParameterName, 'What a child''s stdout is: a JSON result, or text stored as a string')
            [CompletionResult]::new('--max-output-bytes', '--max-output-bytes', [CompletionResultType]::ParameterName, 'The most a child may print on stdout (a persistent worker: per answer line); past it the child is killed and the item fails as bad-output')
            [CompletionResult]::new('--fsync', '--fsync', [CompletionResultType]::ParameterName, 'How hard each cache append is pushed to disk (against power loss, not crashes: a crash of pararun loses no finished result in any mode)')
            [CompletionResult]::new('--lock-wait', '--lock-wait', [CompletionResultType]::ParameterName, 'When another run holds the cache''s lock, wait up to DUR for it (as `flock -w` does) instead of giving up at once; then exit as --conflict-exit-code says')
            [CompletionResult]::new('--conflict-exit-code', '--conflict-exit-code', [CompletionResultType]::ParameterName, 'The exit status when another run holds the cache''s lock (as `flock -E` sets it)')
            [CompletionResult]::new('--retries', '--retries', [CompletionResultType]::ParameterName, 'Retry a failed item up to N more times; bad input is never retried')
            [CompletionResult]::new('--retry-delay', '--retry-delay', [CompletionResultType]::ParameterName, 'Wait before the first retry, doubling (with jitter) on each further one, capped at 1m')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Per attempt: on expiry the child''s process group gets SIGTERM, then SIGKILL after --kill-after')
            [CompletionResult]::new('--kill-after', '--kill-after', [CompletionResultType]::ParameterName, 'Grace between SIGTERM and SIGKILL, for timeouts and for shutdown')
            [CompletionResult]::new('--failures', '--failures', [CompletionResultType]::ParameterName, 'Append one JSON line per failed item to FILE (key, line, item, reason, stderr tail...)')
            [CompletionResult]::new('--max-failures', '--max-failures', [CompletionResultType]::ParameterName, 'After N failed items start nothing new, let running ones finish, and exit 1')
            [CompletionResult]::new('--give-up-after', '--give-up-after', [CompletionResultType]::ParameterName, 'Skip an item once the --failures file records N failed attempts of it, across runs, so that an item that always fails stops failing every run (cron mails). Needs --failures')
            [CompletionResult]::new('--throttle-exit-code', '--throttle-exit-code', [CompletionResultType]::ParameterName, 'The exit code by which a child says "throttled, slow down" (75 is EX_TEMPFAIL)')
            [CompletionResult]::new('--max-throttled', '--max-throttled', [CompletionResultType]::ParameterName, 'Fail an item as `throttled` when it is throttled more than N times')
            [CompletionResult]::new('--total', '--total', [CompletionResultType]::ParameterName, 'The number of items, for the bar''s ETA [default: counted in the background when the input is a regular file]')
            [CompletionResult]::new('--log-interval', '--log-interval', [CompletionResultType]::ParameterName, 'When stderr is not a terminal, print a plain progress line this often')
            [CompletionResult]::new('--stdin', '--stdin', [CompletionResultType]::ParameterName, 'Write the item''s input line to the child''s stdin (otherwise stdin is /dev/null)')
            [CompletionResult]::new('--shell', '--shell', [CompletionResultType]::ParameterName, 'Run the command through `sh -c` even when given as several words')
            [CompletionResult]::new('--persistent', '--persistent', [CompletionResultType]::ParameterName, 'Start COMMAND once per slot as a long-lived worker: each item goes to a free worker as one line on its stdin (the JSON line, or a JSON string for lines input), and the worker answers with one JSON line on stdout')
            [CompletionResult]::new('--adaptive', '--adaptive', [CompletionResultType]::ParameterName, 'Make -j a ceiling: start at 1 and double while nothing is throttled, then cut the number running at once on a throttle and raise it by one after a window of successes')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Print each command that would run (after skipping cached keys), shell-quoted, one per line; run nothing and write nothing')
            [CompletionResult]::new('--halt-on-error', '--halt-on-error', [CompletionResultType]::ParameterName, 'Stop at the first failed item (the same as --max-failures 1)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print no result records on stdout and no summary or progress on stderr (--no-records hides only the records)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print no result records on stdout and no summary or progress on stderr (--no-records hides only the records)')
            [CompletionResult]::new('-k', '-k', [CompletionResultType]::ParameterName, 'Print records on stdout in input order (the cache still gets them as they finish)')
            [CompletionResult]::new('--keep-order', '--keep-order', [CompletionResultType]::ParameterName, 'Print records on stdout in input order (the cache still gets them as they finish)')
            [CompletionResult]::new('--tag', '--tag', [CompletionResultType]::ParameterName, 'Start each line a child writes to stderr with its item''s key and a tab, as GNU parallel''s --tag does, so that the lines of many children can be told apart')
            [CompletionResult]::new('--records', '--records', [CompletionResultType]::ParameterName, 'Print the records on stdout even when stdout is a terminal and --cache keeps them')
            [CompletionResult]::new('--no-records', '--no-records', [CompletionResultType]::ParameterName, 'Print no records on stdout, but the summary and progress as usual (-q hides all)')
            [CompletionResult]::new('--progress', '--progress', [CompletionResultType]::ParameterName, 'Show the progress bar even when stderr is not a terminal')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Show no progress bar and no progress lines')
            [CompletionResult]::new('--timestamps', '--timestamps', [CompletionResultType]::ParameterName, 'Start each of pararun''s own stderr lines with the local time, even on a terminal')
            [CompletionResult]::new('--no-timestamps', '--no-timestamps', [CompletionResultType]::ParameterName, 'Never timestamp stderr lines (e.g. when the log already adds its own, as journald does)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'How far a job is: done, failed, given up, remaining, in flight, live or ended')
            [CompletionResult]::new('failures', 'failures', [CompletionResultType]::ParameterValue, 'The items failing now: their latest attempt failed and they have no record since')
            [CompletionResult]::new('merge', 'merge', [CompletionResultType]::ParameterValue, 'Merges caches into one (OUT): one record per key, whole records only')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'What a cache holds that a run would skip or warn about')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pararun;status' {
            [CompletionResult]::new('--failures', '--failures', [CompletionResultType]::ParameterName, 'A failures file, besides those the runs'' state files name (a glob is expanded; give the flag once per file)')
            [CompletionResult]::new('-i', '-i', [CompletionResultType]::ParameterName, 'The job''s input, to count what remains [default: the runs'' own, when it is a file]')
            [CompletionResult]::new('--input', '--input', [CompletionResultType]::ParameterName, 'The job''s input, to count what remains [default: the runs'' own, when it is a file]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'How to read the input [default: as the runs did]')
            [CompletionResult]::new('--total', '--total', [CompletionResultType]::ParameterName, 'The input''s item count, when the input is not at hand')
            [CompletionResult]::new('--key-field', '--key-field', [CompletionResultType]::ParameterName, 'The field that keys items and records [default: the run''s own, else `id`]')
            [CompletionResult]::new('--max-line-bytes', '--max-line-bytes', [CompletionResultType]::ParameterName, 'The longest line read')
            [CompletionResult]::new('--give-up-after', '--give-up-after', [CompletionResultType]::ParameterName, 'Items with N failed attempts count as given up [default: the runs'' own]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object: done, failed, given_up, remaining, in_flight, running, rate_per_s, eta_s, reasons, and shards (one object per cache with the same fields)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'pararun;failures' {
            [CompletionResult]::new('--failures', '--failures', [CompletionResultType]::ParameterName, 'A failures file [default: those the caches'' runs name]; give the flag once per file')
            [CompletionResult]::new('--key-field', '--key-field', [CompletionResultType]::ParameterName, 'The field that keys items and records [default: the run''s own, else `id`]')
            [CompletionResult]::new('--max-line-bytes', '--max-line-bytes', [CompletionResultType]::ParameterName, 'The longest line read')
            [CompletionResult]::new('--items', '--items', [CompletionResultType]::ParameterName, 'Print only the failing items'' input lines, one per line')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object per failing item')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'pararun;merge' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'The merged cache')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'The merged cache')
            [CompletionResult]::new('--prefer', '--prefer', [CompletionResultType]::ParameterName, 'Which record of a conflicting key to keep')
            [CompletionResult]::new('-i', '-i', [CompletionResultType]::ParameterName, 'Report the keys of this input that are in no cache')
            [CompletionResult]::new('--input', '--input', [CompletionResultType]::ParameterName, 'Report the keys of this input that are in no cache')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'How to read the input [default: as the runs did]')
            [CompletionResult]::new('--key-field', '--key-field', [CompletionResultType]::ParameterName, 'The field that keys items and records [default: the run''s own, else `id`]')
            [CompletionResult]::new('--max-line-bytes', '--max-line-bytes', [CompletionResultType]::ParameterName, 'The longest line read')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'pararun;check' {
            [CompletionResult]::new('--key-field', '--key-field', [CompletionResultType]::ParameterName, 'The field that keys items and records [default: the run''s own, else `id`]')
            [CompletionResult]::new('--max-line-bytes', '--max-line-bytes', [CompletionResultType]::ParameterName, 'The longest line read')
            [CompletionResult]::new('--repair', '--repair', [CompletionResultType]::ParameterName, 'Write a clean copy and rename it into place, keeping the original as CACHE.bak')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'pararun;help' {
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'How far a job is: done, failed, given up, remaining, in flight, live or ended')
            [CompletionResult]::new('failures', 'failures', [CompletionResultType]::ParameterValue, 'The items failing now: their latest attempt failed and they have no record since')
            [CompletionResult]::new('merge', 'merge', [CompletionResultType]::ParameterValue, 'Merges caches into one (OUT): one record per key, whole records only')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'What a cache holds that a run would skip or warn about')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pararun;help;status' {
            break
        }
        'pararun;help;failures' {
            break
        }
        'pararun;help;merge' {
            break
        }
        'pararun;help;check' {
            break
        }
        'pararun;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}

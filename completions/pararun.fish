# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_pararun_global_optspecs
    string join \n i/input= format= key-field= max-line-bytes= shard= j/jobs= stdin shell persistent pipeline= protocol= rate= burst= adaptive dry-run cache= capture= max-output-bytes= fsync= lock-wait= conflict-exit-code= retries= retry-delay= timeout= kill-after= failures= max-failures= halt-on-error give-up-after= throttle-exit-code= max-throttled= q/quiet k/keep-order tag records no-records progress no-progress total= timestamps no-timestamps log-interval= h/help V/version
end

function __fish_pararun_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_pararun_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_pararun_using_subcommand
    set -l cmd (__fish_pararun_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c pararun -n "__fish_pararun_needs_command" -s i -l input -d 'Read items from FILE instead of stdin (`-` is stdin)' -r -F
complete -c pararun -n "__fish_pararun_needs_command" -l format -d 'How to read items: `auto` picks jsonl when the first non-blank line starts with `{`' -r -f -a "auto\t'jsonl when the first non-blank line starts with `{`, else lines'
jsonl\t'One JSON value per line'
lines\t'Each line is an item, keyed by itself'"
complete -c pararun -n "__fish_pararun_needs_command" -l key-field -d 'The top-level field that keys a JSON item and every cache record' -r
complete -c pararun -n "__fish_pararun_needs_command" -l max-line-bytes -d 'The longest line read from the input or the cache, and the longest record written' -r
complete -c pararun -n "__fish_pararun_needs_command" -l shard -d 'Run only shard I of N: the items whose key hashes to I modulo N (0 <= I < N)' -r
complete -c pararun -n "__fish_pararun_needs_command" -s j -l jobs -d 'Children running at once [default: the number of CPUs]' -r
complete -c pararun -n "__fish_pararun_needs_command" -l pipeline -d 'With --persistent: how many items each worker holds at once, sent and not yet answered; 1 waits for each answer (give 1 when item times vary widely in no known order)' -r
complete -c pararun -n "__fish_pararun_needs_command" -l protocol -d 'With --persistent: `ordered` answers one line per request line, in order; `concurrent` wraps each item as {"pararun_id": N, "item": ITEM} and takes answers {"pararun_id": N, "result": R} (or "error": MESSAGE) in any order (an async program)' -r -f -a "ordered\t'One answer line per request line, in order'
concurrent\t'Requests and answers carry a pararun_id; answers in any order'"
complete -c pararun -n "__fish_pararun_needs_command" -l rate -d 'Start at most N items per second, minute or hour (`10/s`, `100/m`, `5000/h`), evenly spaced; retries count too' -r
complete -c pararun -n "__fish_pararun_needs_command" -l burst -d 'With --rate: how many items may start back to back after a pause' -r
complete -c pararun -n "__fish_pararun_needs_command" -l cache -d 'The JSONL cache: keys found in it are skipped; each new result is appended as it arrives' -r -F
complete -c pararun -n "__fish_pararun_needs_command" -l capture -d 'What a child\'s stdout is: a JSON result, or text stored as a string' -r -f -a "json\t'The child\'s stdout is one JSON document, or its last JSON line'
text\t'The child\'s stdout, as a string, is the result'"
complete -c pararun -n "__fish_pararun_needs_command" -l max-output-bytes -d 'The most a child may print on stdout (a persistent worker: per answer line); past it the child is killed and the item fails as bad-output' -r
complete -c pararun -n "__fish_pararun_needs_command" -l fsync -d 'How hard each cache append is pushed to disk (against power loss, not crashes: a crash of pararun loses no finished result in any mode)' -r -f -a "always\t'fdatasync after every write of records, before any of them counts as done'
batch\t'fdatasync at most once a second, and at exit'
never\t'Leave it to the operating system'"
complete -c pararun -n "__fish_pararun_needs_command" -l lock-wait -d 'When another run holds the cache\'s lock, wait up to DUR for it (as `flock -w` does) instead of giving up at once; then exit as --conflict-exit-code says' -r
complete -c pararun -n "__fish_pararun_needs_command" -l conflict-exit-code -d 'The exit status when another run holds the cache\'s lock (as `flock -E` sets it)' -r
complete -c pararun -n "__fish_pararun_needs_command" -l retries -d 'Retry a failed item up to N more times; bad input is never retried' -r
complete -c pararun -n "__fish_pararun_needs_command" -l retry-delay -d 'Wait before the first retry, doubling (with jitter) on each further one, capped at 1m' -r
complete -c pararun -n "__fish_pararun_needs_command" -l timeout -d 'Per attempt: on expiry the child\'s process group gets SIGTERM, then SIGKILL after --kill-after' -r
complete -c pararun -n "__fish_pararun_needs_command" -l kill-after -d 'Grace between SIGTERM and SIGKILL, for timeouts and for shutdown' -r
complete -c pararun -n "__fish_pararun_needs_command" -l failures -d 'Append one JSON line per failed item to FILE (key, line, item, reason, stderr tail...)' -r -F
complete -c pararun -n "__fish_pararun_needs_command" -l max-failures -d 'After N failed items start nothing new, let running ones finish, and exit 1' -r
complete -c pararun -n "__fish_pararun_needs_command" -l give-up-after -d 'Skip an item once the --failures file records N failed attempts of it, across runs, so that an item that always fails stops failing every run (cron mails). Needs --failures' -r
complete -c pararun -n "__fish_pararun_needs_command" -l throttle-exit-code -d 'The exit code by which a child says "throttled, slow down" (75 is EX_TEMPFAIL)' -r
complete -c pararun -n "__fish_pararun_needs_command" -l max-throttled -d 'Fail an item as `throttled` when it is throttled more than N times' -r
complete -c pararun -n "__fish_pararun_needs_command" -l total -d 'The number of items, for the bar\'s ETA [default: counted in the background when the input is a regular file]' -r
complete -c pararun -n "__fish_pararun_needs_command" -l log-interval -d 'When stderr is not a terminal, print a plain progress line this often' -r
complete -c pararun -n "__fish_pararun_needs_command" -l stdin -d 'Write the item\'s input line to the child\'s stdin (otherwise stdin is /dev/null)'
complete -c pararun -n "__fish_pararun_needs_command" -l shell -d 'Run the command through `sh -c` even when given as several words'
complete -c pararun -n "__fish_pararun_needs_command" -l persistent -d 'Start COMMAND once per slot as a long-lived worker: each item goes to a free worker as one line on its stdin (the JSON line, or a JSON string for lines input), and the worker answers with one JSON line on stdout'
complete -c pararun -n "__fish_pararun_needs_command" -l adaptive -d 'Make -j a ceiling: start at 1 and double while nothing is throttled, then cut the number running at once on a throttle and raise it by one after a window of successes'
complete -c pararun -n "__fish_pararun_needs_command" -l dry-run -d 'Print each command that would run (after skipping cached keys), shell-quoted, one per line; run nothing and write nothing'
complete -c pararun -n "__fish_pararun_needs_command" -l halt-on-error -d 'Stop at the first failed item (the same as --max-failures 1)'
complete -c pararun -n "__fish_pararun_needs_command" -s q -l quiet -d 'Print no result records on stdout and no summary or progress on stderr (--no-records hides only the records)'
complete -c pararun -n "__fish_pararun_needs_command" -s k -l keep-order -d 'Print records on stdout in input order (the cache still gets them as they finish)'
complete -c pararun -n "__fish_pararun_needs_command" -l tag -d 'Start each line a child writes to stderr with its item\'s key and a tab, as GNU parallel\'s --tag does, so that the lines of many children can be told apart'
complete -c pararun -n "__fish_pararun_needs_command" -l records -d 'Print the records on stdout even when stdout is a terminal and --cache keeps them'
complete -c pararun -n "__fish_pararun_needs_command" -l no-records -d 'Print no records on stdout, but the summary and progress as usual (-q hides all)'
complete -c pararun -n "__fish_pararun_needs_command" -l progress -d 'Show the progress bar even when stderr is not a terminal'
complete -c pararun -n "__fish_pararun_needs_command" -l no-progress -d 'Show no progress bar and no progress lines'
complete -c pararun -n "__fish_pararun_needs_command" -l timestamps -d 'Start each of pararun\'s own stderr lines with the local time, even on a terminal'
complete -c pararun -n "__fish_pararun_needs_command" -l no-timestamps -d 'Never timestamp stderr lines (e.g. when the log already adds its own, as journald does)'
complete -c pararun -n "__fish_pararun_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pararun -n "__fish_pararun_needs_command" -s V -l version -d 'Print version'
complete -c pararun -n "__fish_pararun_needs_command" -a "status" -d 'How far a job is: done, failed, given up, remaining, in flight, live or ended'
complete -c pararun -n "__fish_pararun_needs_command" -a "failures" -d 'The items failing now: their latest attempt failed and they have no record since'
complete -c pararun -n "__fish_pararun_needs_command" -a "merge" -d 'Merges caches into one (OUT): one record per key, whole records only'
complete -c pararun -n "__fish_pararun_needs_command" -a "check" -d 'What a cache holds that a run would skip or warn about'
complete -c pararun -n "__fish_pararun_needs_command" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pararun -n "__fish_pararun_using_subcommand status" -l failures -d 'A failures file, besides those the runs\' state files name (a glob is expanded; give the flag once per file)' -r -F
complete -c pararun -n "__fish_pararun_using_subcommand status" -s i -l input -d 'The job\'s input, to count what remains [default: the runs\' own, when it is a file]' -r -F
complete -c pararun -n "__fish_pararun_using_subcommand status" -l format -d 'How to read the input [default: as the runs did]' -r -f -a "auto\t'jsonl when the first non-blank line starts with `{`, else lines'
jsonl\t'One JSON value per line'
lines\t'Each line is an item, keyed by itself'"
complete -c pararun -n "__fish_pararun_using_subcommand status" -l total -d 'The input\'s item count, when the input is not at hand' -r
complete -c pararun -n "__fish_pararun_using_subcommand status" -l key-field -d 'The field that keys items and records [default: the run\'s own, else `id`]' -r
complete -c pararun -n "__fish_pararun_using_subcommand status" -l max-line-bytes -d 'The longest line read' -r
complete -c pararun -n "__fish_pararun_using_subcommand status" -l give-up-after -d 'Items with N failed attempts count as given up [default: the runs\' own]' -r
complete -c pararun -n "__fish_pararun_using_subcommand status" -l json -d 'Print one JSON object: done, failed, given_up, remaining, in_flight, running, rate_per_s, eta_s, reasons, and shards (one object per cache with the same fields)'
complete -c pararun -n "__fish_pararun_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pararun -n "__fish_pararun_using_subcommand failures" -l failures -d 'A failures file [default: those the caches\' runs name]; give the flag once per file' -r -F
complete -c pararun -n "__fish_pararun_using_subcommand failures" -l key-field -d 'The field that keys items and records [default: the run\'s own, else `id`]' -r
complete -c pararun -n "__fish_pararun_using_subcommand failures" -l max-line-bytes -d 'The longest line read' -r
complete -c pararun -n "__fish_pararun_using_subcommand failures" -l items -d 'Print only the failing items\' input lines, one per line'
complete -c pararun -n "__fish_pararun_using_subcommand failures" -l json -d 'Print one JSON object per failing item'
complete -c pararun -n "__fish_pararun_using_subcommand failures" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pararun -n "__fish_pararun_using_subcommand merge" -s o -l output -d 'The merged cache' -r -F
complete -c pararun -n "__fish_pararun_using_subcommand merge" -l prefer -d 'Which record of a conflicting key to keep' -r -f -a "first\t''
last\t''"
complete -c pararun -n "__fish_pararun_using_subcommand merge" -s i -l input -d 'Report the keys of this input that are in no cache' -r -F
complete -c pararun -n "__fish_pararun_using_subcommand merge" -l format -d 'How to read the input [default: as the runs did]' -r -f -a "auto\t'jsonl when the first non-blank line starts with `{`, else lines'
jsonl\t'One JSON value per line'
lines\t'Each line is an item, keyed by itself'"
complete -c pararun -n "__fish_pararun_using_subcommand merge" -l key-field -d 'The field that keys items and records [default: the run\'s own, else `id`]' -r
complete -c pararun -n "__fish_pararun_using_subcommand merge" -l max-line-bytes -d 'The longest line read' -r
complete -c pararun -n "__fish_pararun_using_subcommand merge" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pararun -n "__fish_pararun_using_subcommand check" -l key-field -d 'The field that keys items and records [default: the run\'s own, else `id`]' -r
complete -c pararun -n "__fish_pararun_using_subcommand check" -l max-line-bytes -d 'The longest line read' -r
complete -c pararun -n "__fish_pararun_using_subcommand check" -l repair -d 'Write a clean copy and rename it into place, keeping the original as CACHE.bak'
complete -c pararun -n "__fish_pararun_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pararun -n "__fish_pararun_using_subcommand help; and not __fish_seen_subcommand_from status failures merge check help" -f -a "status" -d 'How far a job is: done, failed, given up, remaining, in flight, live or ended'
complete -c pararun -n "__fish_pararun_using_subcommand help; and not __fish_seen_subcommand_from status failures merge check help" -f -a "failures" -d 'The items failing now: their latest attempt failed and they have no record since'
complete -c pararun -n "__fish_pararun_using_subcommand help; and not __fish_seen_subcommand_from status failures merge check help" -f -a "merge" -d 'Merges caches into one (OUT): one record per key, whole records only'
complete -c pararun -n "__fish_pararun_using_subcommand help; and not __fish_seen_subcommand_from status failures merge check help" -f -a "check" -d 'What a cache holds that a run would skip or warn about'
complete -c pararun -n "__fish_pararun_using_subcommand help; and not __fish_seen_subcommand_from status failures merge check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'

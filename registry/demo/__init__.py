"""``registry demo``: the whole champion/challenger flow on this machine, end to end.

The story (``story.py``): a team has a model in production (the first active spec, "the
incumbent") and retrains variants of it (the other active specs). Steps: 1. migrate the
database; 2. generate the synthetic market; 3. train the incumbent through the zoo's runner;
4. let shadow days land and score them; 5. crown the incumbent the first champion through the
promotion service, on its own shadow evidence (``first_champion.py``); 6. train the variants
through the zoo; 7. let most of the market's remaining days land and score everything, so that
the variants have evidence against the champion (comparisons start at its first day as
champion; ``shadow_days.py``); 8. show the leaderboard; 9. serve the real API in this process
(``server.py``), create a promote token and promote the best challenger over REST (or print the
gate's refusal and its reasons); print the curl lines to try next (``serving.py``); then, unless
``--no-serve``, keep serving the API and the page at ``/`` while the scheduled shadow job lets a
new market day land every few seconds (``ticks.py``; the days kept back for it), until Ctrl-C
(exit 0).

Re-running reuses what is there: the database, the market and the days that have landed, the
trained versions (the training cutoff is pinned to the last day of the market's initial
landing, so the same specs give the same fingerprints and the zoo skips them), the champion.
Only the days still missing land, so a re-run is quick; once the market has run out of days the
demo scores what it has and says so. Start over by deleting the database and artefacts root.

The demo orchestrates every part (like the CLIs), so it imports zoo and shadow; ``registry.cli``
imports it only when ``registry demo`` runs.
"""

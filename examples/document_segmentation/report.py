"""Print each training round's recall (last epoch) and how much feedback fed it."""

import trellis

recall = trellis.dataframe("recall", "feedback_labels", "training_pages")
rounds = recall.groupby("run_id", sort=False).agg(
    started=("tstamp", "first"),
    training_pages=("training_pages", "max"),
    feedback_labels=("feedback_labels", "max"),
    recall=("recall", "last"),
).sort_values("started")
rounds.insert(0, "round", range(1, len(rounds) + 1))
print(rounds.reset_index().drop(columns="started").to_string(index=False))

"""Each round: the pages people had labelled, the model exported and its held-out recall."""

import trellis

exported = trellis.dataframe("exported_run", "exported_epoch", "exported_human_labels",
                             "exported_test_recall", "exported_test_precision").sort_values("tstamp")
table = exported.rename(columns=lambda name: name.removeprefix("exported_"))
table.insert(0, "round", range(1, len(table) + 1))
table["run"] = table["run"].str[:8]
print("model/model.npz of each round (test: held-out PDFs, never labelled):")
print(table[["round", "human_labels", "run", "epoch", "test_recall", "test_precision"]]
      .rename(columns={"human_labels": "pages_labelled_by_people", "run": "training_run"})
      .to_string(index=False))

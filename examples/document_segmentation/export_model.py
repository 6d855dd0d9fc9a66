"""Export the model of the newest training round: of that run's checkpointed epochs, the one with
the best F1 on the validation PDFs (the later epoch on a tie), to model/model.npz, with its recall
and precision on the held-out test PDFs."""

from pathlib import Path

import numpy as np

import trellis

newest = next(run["run_id"] for run in trellis.runs() if run["filename"] == "train.py" and run["status"] == "ok")
scores = trellis.dataframe("val_recall", "val_precision", "test_recall", "test_precision", runs=newest)
human_labels = int(trellis.dataframe("human_labels", runs=newest)["human_labels"].iloc[0])
recall, precision = scores["val_recall"], scores["val_precision"]
scores["val_f1"] = (2 * recall * precision / (recall + precision)).fillna(0.0)
saved = trellis.query("SELECT c.idx AS epoch FROM checkpoints c JOIN runs r ON r.id = c.run"
                      " WHERE r.uuid = ?", (newest,))
scores = scores[scores["epoch"].isin(saved["epoch"])]
best = scores.sort_values(["val_f1", "epoch"]).iloc[-1]
model = trellis.load_checkpoint(newest, int(best.epoch))["model"]

Path("model").mkdir(exist_ok=True)
np.savez("model/model.npz", **model)
trellis.log("exported_run", newest)
trellis.log("exported_epoch", int(best.epoch))
trellis.log("exported_human_labels", human_labels)
trellis.log("exported_test_recall", float(best.test_recall))
trellis.log("exported_test_precision", float(best.test_precision))
print(f"exported model/model.npz: training run {newest[:8]}, epoch {int(best.epoch)}"
      f" (best validation F1), trained on {human_labels} pages labelled by people;"
      f" held-out test PDFs: recall {best.test_recall:.2f}, precision {best.test_precision:.2f}")

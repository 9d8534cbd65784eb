"""A run's progress: a live tqdm bar in a terminal; elsewhere (JupyterLab, papermill, HTML, where tqdm's widget
exports as "HBox(...)" and its text bar leaves carriage returns) one plain line per epoch, each with its own bar."""
from __future__ import annotations

import sys


class RunProgress:
    """Progress over a run's epochs: a live tqdm bar in a terminal (`tty`: fed batch by batch), else epoch lines."""

    def __init__(self, total_epochs: int, steps_per_epoch: int, desc: str, enabled: bool, start_epoch: int):
        self.total, self.desc, self.enabled, self.bar = total_epochs, desc, enabled, None
        self.tty = enabled and sys.stderr.isatty()
        if self.tty:
            from tqdm.std import tqdm
            self.bar = tqdm(total=total_epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch,
                            desc=desc, unit="batch", dynamic_ncols=True, leave=True)
        elif enabled:
            what = f"resuming at epoch {start_epoch + 1}" if start_epoch else "starting"
            print(f"{desc}: {what}, {total_epochs} epochs of {steps_per_epoch} batches", flush=True)

    def step(self, totals, images: int):
        """Advance the terminal bar by one batch; every 25th, show totals() = (loss sum, correct) over `images`."""
        self.bar.update(1)
        if self.bar.n % 25 == 1:  # reading the totals syncs the device: not every step
            loss, correct = totals()
            self.bar.set_postfix(loss=f"{loss / images:.3f}", acc=f"{100.0 * correct / images:.1f}%", refresh=False)

    def epoch_end(self, row: dict):
        """Report a finished epoch."""
        e = int(row["epoch"])
        text = (f"epoch {e:>3}/{self.total}  train loss {row['train_loss']:.4f} acc {row['train_acc']:5.1f}%"
                f"  test loss {row['test_loss']:.4f} acc {row['test_acc']:5.1f}%"
                f"  lr {row['lr']:.4g}  {row['seconds']:.1f}s  {row['images_per_s']:.0f} img/s")
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{row['train_loss']:.3f}", test=f"{row['test_acc']:.1f}%")
            self.bar.write(f"{self.desc} {text}")
        elif self.enabled:
            full = round(20 * e / self.total)
            print(f"{self.desc} |{'█' * full + '·' * (20 - full)}| {text}", flush=True)

    def close(self):
        """Close the terminal bar."""
        if self.bar is not None:
            self.bar.close()

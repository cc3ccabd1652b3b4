"""The data scan run before the first attack: every sample of the split decoded and checked.

Everything :meth:`SegmentationDataset.__getitem__` checks -- readable image and label files, equal
sizes, a single-channel label file, label values inside the class range or ``ignore_index``, images
inside [0, 1] -- is checked here for every sample, plus that a ``batch_size`` above 1 can stack the
images (all of one size). A mistake in the last image then costs seconds, not a run. A progress bar
appears when the scan takes more than a second.
"""

from __future__ import annotations

from benchmark.data.base import SegmentationDataset
from benchmark.errors import DataError


def scan(dataset: SegmentationDataset, batch_size: int, progress: bool = True) -> None:
    """Raise the first :class:`DataError` of the split (one line naming the file), or return."""
    from tqdm import tqdm

    first_size, first_name = None, None
    with tqdm(total=len(dataset), desc="checking data", unit="image", delay=1.0, disable=not progress,
              leave=False) as bar:
        for index in range(len(dataset)):
            sample = dataset[index]
            size = tuple(sample["image"].shape[-2:])
            if batch_size > 1:
                if first_size is None:
                    first_size, first_name = size, sample["name"]
                elif size != first_size:
                    raise DataError(
                        f"data.batch_size {batch_size} needs images of one size, but {sample['name']!r} is "
                        f"{size[1]}x{size[0]} and {first_name!r} {first_size[1]}x{first_size[0]} (WxH); "
                        "use data.batch_size 1")
            bar.update()

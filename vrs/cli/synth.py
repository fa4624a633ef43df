"""vrs-synth: write the procedural visual catalogue in the canonical format.

vrs-synth out_dir=data/synthetic n_users=2000 n_items=1000 seed=0
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from vrs.cli.common import CONFIG_DIR, friendly_errors


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="synth")
@friendly_errors
def main(cfg: DictConfig) -> None:
    from vrs.data.schema import format_summary, load_dataset, summarize
    from vrs.data.synthetic import generate

    options = OmegaConf.to_container(cfg, resolve=True)
    options.pop("hydra", None)
    root = generate(**options)
    print(format_summary(summarize(load_dataset(root))))
    print(f"dataset written to {root}")


if __name__ == "__main__":
    main()

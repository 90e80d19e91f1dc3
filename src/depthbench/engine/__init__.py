"""One training run (Lightning Fabric), its checkpoints, evaluation and prediction.

`config.TrainConfig`, `trainer.train(config, out_dir, split_path=None, variant="base",
progress=None, resume=True) -> dict` (result.json), `evaluate.evaluate_checkpoint(path, data,
split) -> dict`, `evaluate.predict(path, images, top_k) -> list`,
`checkpoint.load_model_from_checkpoint(path) -> (model, meta)`.

Import names from their modules: this file imports nothing, so `--help` reads the option table
(`engine.config`) and the checks before torch loads (`engine.inputs`) without torch.
"""

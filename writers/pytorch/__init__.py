"""PyTorch: a readable, standalone nn.Module (`STEM.py`), its state_dict
(`STEM.safetensors`) and `STEM.json` (inputs, outputs, source, layer map)."""

from migrate.core.registry import WriterSpec, register_writer

SPEC = register_writer(WriterSpec(
    name="pytorch",
    title="PyTorch nn.Module code + safetensors",
    module="migrate.writers.pytorch.writer",
    runtime="torch",
    aliases=("torch",),
    outputs="STEM.py, STEM.safetensors, STEM.json (--pytorch-export: also STEM.pt2)",
    extra="torch",
    fold_weights=False,  # BatchNorm and Dropout stay layers: the module can be fine-tuned
))

"""TensorFlow SavedModel ("tf") and LiteRT flatbuffer ("tflite"), NHWC inside, from one
lowered program; each with a STEM.json sidecar (layouts, layer tensors).

Light: the SavedModel writer imports TensorFlow only when it writes; the .tflite writer
never does (it writes the flatbuffer itself with LiteRT's schema classes)."""

from migrate.core.registry import WriterSpec, register_writer

SAVEDMODEL = register_writer(WriterSpec(
    name="tf",
    title="TensorFlow SavedModel (serving_default signature, NHWC)",
    module="migrate.writers.tensorflow.savedmodel_writer",
    runtime="tensorflow",
    aliases=("tensorflow", "savedmodel"),
    outputs="STEM_savedmodel/, STEM.json",
    extra="tensorflow",
))

TFLITE = register_writer(WriterSpec(
    name="tflite",
    title="LiteRT / TensorFlow Lite flatbuffer (float32, NHWC)",
    module="migrate.writers.tensorflow.tflite_writer",
    runtime="litert",
    aliases=("litert",),
    outputs="STEM.tflite, STEM.json",
    extra="litert",
))

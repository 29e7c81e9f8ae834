"""Dropout at inference time."""

from migrate.readers.torch7.registry import converter


@converter("nn.Dropout", "nn.SpatialDropout", "nn.VolumetricDropout")
def dropout(ctx, module, x):
    p = module.float("p", 0.5)
    # nn.Dropout v1 (v2 false or missing in old files) scales by 1-p at test time,
    # v2 scales during training instead, so inference is the identity.
    # Spatial/VolumetricDropout always scale at test time.
    scales = module.cls != "nn.Dropout" or not module.bool("v2", False)
    if p == 0.0 or not scales:
        return x
    return ctx.op("Mul", [x, ctx.scalar(1.0 - p, "keep")], hint="dropout")

"""DDP and FSDP2 run the pairs' log-probs through the pair module's forward: the packed
FlexAttention rows and the blockwise head, with the gradients of the plain model. One process
(gloo) in this process; tests/training/test_distributed.py and test_fsdp.py run two."""

import copy
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.helpers import tiny_causal_lm  # noqa: E402
from tests.models.test_flex import _dense_kernel, _pairs  # noqa: E402

pytestmark = pytest.mark.models


@pytest.fixture
def one_process(tmp_path):
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'group'}", rank=0, world_size=1
    )
    yield
    dist.destroy_process_group()


@pytest.fixture
def packed(monkeypatch):
    """The packed path on the CPU, its kernel replaced by SDPA over the block mask's rule (the
    CPU FlexAttention kernel has no backward pass), the head's calls counted."""
    from prefaudit.models import flex, packing

    monkeypatch.setenv("PREFAUDIT_ATTENTION", "flex-eager")
    warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile")
    monkeypatch.setattr(flex, "kernel", _dense_kernel)
    calls = []
    blockwise = packing._blockwise

    def counted(*args, **kwargs):
        calls.append(1)
        return blockwise(*args, **kwargs)

    monkeypatch.setattr(packing, "_blockwise", counted)
    return calls


def _logps_and_grads(model, grads_of):
    from prefaudit.models.flex import pair_logps

    prompts, responses = _pairs()
    logps = pair_logps(model, prompts, responses, pad=0, precise=False)
    (logps * 0.1).sum().backward()
    return logps.detach(), grads_of()


def _plain_grads(model):
    return lambda: {n: p.grad.clone() for n, p in model.named_parameters()}


def test_ddp_around_the_pair_module_takes_the_packed_path_and_the_blockwise_head(
    one_process, packed
):
    from torch.nn.parallel import DistributedDataParallel

    from prefaudit.models import flex

    model = tiny_causal_lm().train()
    twin = copy.deepcopy(model)
    wrapped = DistributedDataParallel(flex.pair_module(model))
    # DDP has no config: asking it used to raise AttributeError on CUDA's default path.
    assert flex.attention_path(wrapped) == "flex-eager"
    assert flex.attention_path(DistributedDataParallel(tiny_causal_lm().train())) == "dense"
    got, grads = _logps_and_grads(wrapped, _plain_grads(model))
    assert packed  # the blockwise head ran (DDP around the model itself takes whole logits)
    want, expected = _logps_and_grads(twin, _plain_grads(twin))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-5)
    for name, grad in expected.items():
        torch.testing.assert_close(grads[name], grad, rtol=0, atol=1e-5, msg=name)


def test_fsdp_shards_the_pair_module_as_its_root(one_process, packed):
    from prefaudit.models import flex
    from prefaudit.training.sharding import is_sharded, shard

    model = tiny_causal_lm().train()
    twin = copy.deepcopy(model)
    sharded, root = shard(model, "cpu", 1)
    assert flex.causal_lm(root) is sharded
    assert all(is_sharded(p) for p in sharded.parameters())
    # Outside a forward the embeddings are a shard: the decoder and head called apart would
    # not see them gathered. Through the root's forward, FSDP gathers them.
    assert flex.attention_path(root) == "flex-eager"
    got, grads = _logps_and_grads(
        root, lambda: {n: p.grad.full_tensor() for n, p in sharded.named_parameters()}
    )
    assert packed
    want, expected = _logps_and_grads(twin, _plain_grads(twin))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-5)
    for name, grad in expected.items():
        torch.testing.assert_close(grads[name], grad, rtol=0, atol=1e-5, msg=name)

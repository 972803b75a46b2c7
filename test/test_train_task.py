import pytest
import torch

from deep_perception.train.task import eval_mode


def test_eval_mode_restores_the_previous_state_even_on_error():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout())
    with eval_mode(model):
        assert not model.training and not model[1].training
    assert model.training and model[1].training
    model.eval()
    with eval_mode(model):
        pass
    assert not model.training
    model.train()
    with pytest.raises(RuntimeError):
        with eval_mode(model):
            raise RuntimeError("boom")
    assert model.training

"""``OwnLossTask``: a task that says how its ``Trainer`` computes the loss and what an evaluation keeps.

Transformers' ViTPose, DPT, Depth Anything and Swin2SR raise when given labels; their tasks compute the loss from
the model's outputs themselves. Semantic segmentation takes its models' own loss, but keeps only class maps from
an evaluation. The ``Trainer`` they share (``own_loss_trainer``) asks the task for three things:

- ``loss_and_outputs(model, inputs)``: the batch's loss (a per-batch mean: the Trainer divides it by the
  accumulation steps) and the outputs an evaluation keeps;
- ``start_evaluation()``: forget the batches of an evaluation that stopped half-way (``batch_eval_metrics``
  tasks accumulate per batch);
- ``eval_outputs(model, inputs, outputs)``: what an evaluation batch hands ``compute_metrics``, as
  (predictions, label_ids), computed without gradients.
"""

from __future__ import annotations

from typing import Any

from adapters.transformers.tasks.base import HFTask


class OwnLossTask(HFTask):
    def loss_and_outputs(self, model, inputs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """(loss, outputs) of one batch."""
        raise NotImplementedError

    def start_evaluation(self) -> None:
        """Called before each evaluation: drop what a previous one accumulated."""

    def eval_outputs(self, model, inputs: dict[str, Any], outputs: dict[str, Any]) -> tuple[Any, Any]:
        """(predictions, label_ids) of one evaluation batch, from its ``outputs``."""
        raise NotImplementedError

    def trainer_class(self):
        return own_loss_trainer(self)


def own_loss_trainer(task: OwnLossTask):
    """A ``Trainer`` class whose loss, evaluation reset and evaluation outputs are ``task``'s."""
    from transformers import Trainer

    class OwnLossTrainer(Trainer):
        loss_is_scaled_for_ga = False  # a per-batch value: the Trainer divides by accumulation steps

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = task.loss_and_outputs(model, inputs)
            return (loss, outputs) if return_outputs else loss

        def evaluate(self, *args, **kwargs):
            task.start_evaluation()
            return super().evaluate(*args, **kwargs)

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            import torch

            inputs = self._prepare_inputs(inputs)
            with torch.no_grad(), self.compute_loss_context_manager():
                loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
                loss = None if loss is None else loss.detach().mean()  # mean: one value per device under DataParallel
                if prediction_loss_only:
                    return loss, None, None
                predictions, labels = task.eval_outputs(model, inputs, outputs)
            return loss, predictions.detach(), labels

    return OwnLossTrainer

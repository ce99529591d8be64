"""The workflow's stages, one module each; every rule script calls one function of them.

- download: the pretrained model and each task's data splits (rules download_model, download_data)
- finetune: dense fine-tuning on the training language (rule finetune)
- prune: prune to a target and retrain, on the ladder or the independent schedule (rule prune)
- evaluate: accuracy of a model on every split and language of its task (rules evaluate_{task})
- alignment: how aligned a pruned model stays, in weights and in representations (analysis rules)

``common`` holds what the training stages share (settings, seeds, checkpoints, reporting) and
``keys`` the model identity written into every record.
"""

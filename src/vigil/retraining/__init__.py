"""Retraining as background experiments (``PUT /retrain``): the runner and the child-process job.

Import from the modules: ``runner`` (``RetrainRunner``), ``job`` (``SubprocessTrainJob``) and
``errors``. Nothing here imports torch: training runs in a child process.
"""

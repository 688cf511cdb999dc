"""The model lifecycle: new labelled data, background retraining, promotion and deployment.

Import from the modules: ``add_data`` (``TrainingData``), ``runner`` (``RetrainRunner``),
``job`` (the training subprocess), ``gate`` (champion vs challenger), ``deploy``.
Nothing is imported here so that serving pulls in only what it uses.
"""

"""Vigil's data layer; import the public entry points from their modules.

- ``vigil.data.schema``: column names and dtypes;
- ``vigil.data.simulate``: ``simulate_transactions``, ``generate`` (the handbook's simulator);
- ``vigil.data.io``: ``read_transactions``, ``write_partitioned``;
- ``vigil.data.origin``: ``recorded_world`` (the simulated world a dataset's files record);
- ``vigil.data.contracts``: ``validate_transactions``, ``DataContractError``;
- ``vigil.data.quality``: ``quality_report``.

Nothing is imported here so that ``vigil.data.schema`` stays cheap for serving code.
"""

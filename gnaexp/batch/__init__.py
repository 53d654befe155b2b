"""Many runs: the YAML matrix, the runner (papermill into HTML), the fork server of warm kernels, the dask
cluster.
"""

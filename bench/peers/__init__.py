"""Peer apps for ``make bench``: what a user would copy instead of this service.

Each is written the way its community writes it, and serves the same item from the same table:
``seed_chalice`` (the Chalice sample this service grew from: a boto3 resource, one route),
``powertools_app`` (Powertools' REST resolver with Logger, Metrics, Tracer and pydantic models) and
``fastapi_app`` (FastAPI behind Mangum). Their dependencies are in requirements-bench.txt, never in
the Lambda package. The only concession to this service's table is its key: the item lives under
``pk = T#<tenant>``, ``sk = ITEM#<id>``, and the tenant (none of these apps has auth) comes from
``BENCH_TENANT``.
"""

"""Node providers (adapters): the machines behind a pool's Nomad nodes, and Nomad's node API.

    aws_asg.py     an EC2 Auto Scaling Group through boto3 (scale-out: desired capacity; scale-in: exact instances)
    gce_mig.py     a Compute Engine managed instance group through google-cloud-compute (extra [gcp]; gce_api.py: calls)
    azure_vmss.py  an Azure virtual machine scale set through azure-mgmt-compute (extra [azure]; azure_api.py: calls)
    cloud_calls.py what the SDK providers share: their extras, retries honouring Retry-After, operation deadlines
    command.py     a user executable speaking JSON on stdin/stdout (Terraform, on-prem inventories, other clouds)
    directory.py   Nomad's nodes through forescale's NomadClient: pool nodes with allocations, drain, purge

What to do with them (which nodes, when to terminate) is planned in ``autoscaler.policy.nodes``.
"""

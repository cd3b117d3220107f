"""Node providers (adapters): the machines behind a pool's Nomad nodes, and Nomad's node API.

    aws_asg.py     an EC2 Auto Scaling Group through boto3 (scale-out: desired capacity; scale-in: exact instances)
    command.py     a user executable speaking JSON on stdin/stdout (Terraform, on-prem inventories, other clouds)
    directory.py   Nomad's nodes through forescale's NomadClient: pool nodes with allocations, drain, purge

What to do with them (which nodes, when to terminate) is planned in ``autoscaler.policy.nodes``.
"""

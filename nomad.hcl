# Nomad client agent config for a GPU node running forescale's ML workers (raw_exec + docker compose).
#
# Install on every GPU node as /etc/nomad.d/client.hcl (next to your server/TLS/ACL config), then
# `systemctl restart nomad`. `forescale render` reads client.max_kill_timeout from this file to check
# each pool's kill_timeout (jobspec.nomad_client_config points elsewhere if you keep a different copy).
#
# The node also needs: Docker with the NVIDIA container toolkit (`runtime: nvidia` in the compose file),
# docker compose v2 (`docker compose`) or v1 (Debian's `docker-compose`), python3 (the entrypoint is a
# stdlib-only Python script), and the nomad-device-nvidia plugin binary in plugin_dir.

data_dir   = "/opt/nomad/data"
plugin_dir = "/opt/nomad/plugins"

# One datacenter per availability zone: set it to the node's zone (the example jobs list eu-west-1a and
# eu-west-1b). Without it Nomad puts the node in "dc1" and a job pinned to other datacenters places nothing;
# `forescale render` checks that this value is one of each job's datacenters.
datacenter = "eu-west-1a"

client {
  enabled = true

  # forescale's ml-worker jobs select `node_pool = "gpu"`; the pool must exist on the servers
  # (`nomad node pool apply` with a node_pool "gpu" {} spec).
  node_pool = "gpu"

  # Matched by the `${node.class}` constraint when a pool sets jobspec.node_class.
  node_class = "gpu-t4"

  # Raise the cap on task kill_timeout: a worker task needs drain_timeout + compose stop timeout + margin
  # (60s + 10s + 10s = 80s by default) and Nomad's default cap is 30s, after which it SIGKILLs the
  # entrypoint mid-drain and in-flight requests are lost. forescale render refuses kill_timeouts above this.
  max_kill_timeout = "5m"

  # Free-form attributes for constraints/spread (`${meta.zone}`, `${meta.gpu_model}`). `forescale render` reads
  # gpu_model to check a pool's gpu_memory against what the GPU reports to Nomad (a T4: 15079-15110 MiB).
  meta {
    zone      = "eu-west-1a"
    gpu_model = "tesla-t4"
  }

  # What the OS, Docker and the Nomad agent need. The workers' CPU and RAM are reserved by the job itself
  # (its task resources = workers × worker_cpus/worker_memory), so other jobs cannot take them.
  reserved {
    cpu    = 500
    memory = 1024
  }
}

plugin "raw_exec" {
  config {
    # The worker task runs the compose entrypoint with raw_exec: containers outlive a cgroup-isolated task,
    # so the entrypoint stops them itself (see docs/jobspecs.md). Enable raw_exec only on these GPU nodes.
    enabled = true
  }
}

# The NVIDIA device plugin fingerprints the GPUs and reserves one per allocation (`device "nvidia/gpu"`),
# handing its UUID to the task as NVIDIA_VISIBLE_DEVICES, which the compose file passes to every worker.
plugin "nomad-device-nvidia" {
  config {
    enabled            = true
    fingerprint_period = "1m"
    # ignored_gpu_ids = ["GPU-..."]   # GPUs Nomad must not hand out
  }
}

# The docker driver is not used by the worker jobs (compose talks to dockerd directly), but forescale's own
# job uses it on default-pool nodes; on GPU nodes keep it for image GC and volumes only.
plugin "docker" {
  config {
    volumes {
      enabled = false
    }
  }
}

# Prometheus scrapes /v1/metrics?format=prometheus on every agent: allocation, GPU device and client metrics.
telemetry {
  collection_interval        = "10s"
  publish_allocation_metrics = true
  publish_node_metrics       = true
  prometheus_metrics         = true
  disable_hostname           = true
}

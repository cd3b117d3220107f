# Rendered by `forescale render` from forescale.jobspec-example.yaml; edit the config and re-render, not this file.
# Secrets: nomad var put nomad/jobs/forescale NOMAD_TOKEN=... 
job "forescale" {
  type        = "service"
  namespace   = "default"
  node_pool   = "default"
  datacenters = ["*"]

  group "forescale" {
    count = 1

    # A single daemon: decisions must not be made twice. update/migrate keep at most one running.
    update {
      max_parallel = 1
      auto_revert  = true
    }

    network {
      port "metrics" {
        to = 9464
      }
    }

    # The audit log and the manual-override store live next to the config: keep them across updates.
    ephemeral_disk {
      sticky  = true
      migrate = true
      size    = 300
    }

    restart {
      attempts = 3
      interval = "10m"
      delay    = "15s"
      mode     = "delay"
    }

    task "forescale" {
      driver = "docker"

      config {
        image = "registry.example.com/forescale:0.1.0"
        args  = ["run", "--config", "local/forescale.yaml"]
        ports = ["metrics"]
      }

      # The daemon stops cleanly on SIGTERM (finishes the tick in progress).
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      template {
        destination = "local/forescale.yaml"
        change_mode = "restart"
        data        = <<FORESCALE_EOF
# forescale.jobspec-example.yaml, embedded by `forescale render --self` (daemon.listen_* set for the container)
nomad:
  address: http://127.0.0.1:4646
pools:
- name: ocr
  query: sum(rate(http_requests_total{service="ocr"}[5m]))
  nomad:
    job: ml-workers
    group: ocr
  capacity_per_node: 40
  min: 2
  max: 20
  lead_time: 10m
  jobspec:
    image: registry.example.com/ml/ocr:1.4.2
    workers_per_gpu: 4
    worker_gpu_memory: 3GiB
    gpu_memory: 16GiB
    worker_cpus: 2
    worker_memory: 6GiB
    node_pool: gpu
    node_class: gpu-t4
    datacenters:
    - eu-west-1a
    - eu-west-1b
    spread_attribute: node.datacenter
    pull_policy: missing
    image_pull_time: 4m
    env:
      MODEL_NAME: ocr-v4
      QUEUE_URL: amqp://rabbitmq.service.consul:5672/ocr
    secret_env:
    - QUEUE_PASSWORD
    worker_stop_signal: SIGTERM
    drain_timeout: 60s
    stop_timeout: 10s
    kill_margin: 10s
    shutdown_delay: 10s
    max_kill_timeout: 5m
- name: face-match
  query: sum(rate(http_requests_total{service="face"}[5m]))
  nomad:
    job: ml-workers
    group: face-match
  capacity_per_node: 25
  min: 1
  max: 10
  jobspec:
    image: registry.example.com/ml/face-match:2.0.1
    workers_per_gpu: 2
    node_pool: gpu
    datacenters:
    - eu-west-1a
    - eu-west-1b
    nomad_client_config: ../../nomad.hcl
daemon:
  listen_host: 0.0.0.0
  listen_port: 9464
FORESCALE_EOF
      }

      # Tokens and webhook URLs, never in the job file.
      template {
        destination = "secrets/forescale.env"
        env         = true
        change_mode = "restart"
        data        = <<FORESCALE_EOF
{{ with nomadVar "nomad/jobs/forescale" }}
{{ if .NOMAD_TOKEN }}NOMAD_TOKEN={{ .NOMAD_TOKEN | toJSON }}{{ end }}
{{ end }}
FORESCALE_EOF
      }

      resources {
        cpu    = 500
        memory = 512
      }

      service {
        provider = "nomad"
        name     = "forescale"
        port     = "metrics"

        check {
          type     = "http"
          path     = "/healthz"
          interval = "30s"
          timeout  = "5s"
        }
      }
    }
  }
}

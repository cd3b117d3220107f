# Rendered by `forescale render --self` from forescale.jobspec-example.yaml; edit the config and re-render, not this file.
# Before the first run:
#   nomad var put nomad/jobs/forescale NOMAD_TOKEN=... SLACK_BOT_TOKEN=... SLACK_WEBHOOK_URL=...
#   The Nomad token needs read-job and scale-job on the scaled jobs' namespace, and read/write/list/destroy
#   on the Variables under forescale/overrides/* and write on forescale/leader (the leader lock)
#   (docs/nomad.md, "ACL policy").

job "forescale" {
  type        = "service"
  namespace   = "default"
  node_pool   = "default"
  datacenters = ["*"]

  group "forescale" {
    count = 2

    # 2 daemons, spread over nodes where there are several; leader election (a Nomad Variables lock
    # on forescale/leader) lets one of them scale at a time, the others stand by.
    spread {
      attribute = "${node.unique.id}"
    }

    # Replace one allocation at a time; roll back a version that never becomes healthy.
    update {
      max_parallel = 1
      auto_revert  = true
    }

    network {
      port "metrics" {
        to = 9464
      }
    }

    # The audit log (cooldowns) lives in /alloc/data: kept across updates and node migrations.
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
        args  = ["run", "--config", "/local/forescale.yaml"]
        ports = ["metrics"]
      }

      # The daemon stops cleanly on SIGTERM (finishes the tick in progress, flushes Slack).
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      template {
        destination = "local/forescale.yaml"
        change_mode = "restart"
        data        = <<FORESCALE_EOF
# forescale.jobspec-example.yaml, embedded by `forescale render --self` and adjusted for the allocation:
# prometheus.url, nomad.address, audit_log, overrides, daemon.listen_*; pools without their jobspec
prometheus:
  url: http://prometheus.service.consul:9090
nomad:
  address: https://nomad.service.consul:4646
overrides:
  store: nomad
  schedule_file: schedule.yaml
slack:
  channel: '#ops-scaling'
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
- name: face-match
  query: sum(rate(http_requests_total{service="face"}[5m]))
  nomad:
    job: ml-workers
    group: face-match
  capacity_per_node: 25
  min: 1
  max: 10
audit_log: /alloc/data/forescale-audit.jsonl
daemon:
  listen_host: 0.0.0.0
  listen_port: 9464
FORESCALE_EOF
      }

      template {
        destination = "local/schedule.yaml"
        change_mode = "restart"
        perms       = "0644"
        data        = <<FORESCALE_EOF
# Schedule rules of the golden example (embedded by render --self into local/schedule.yaml).
timezone: Asia/Kolkata
rules:
  - name: stores-open
    pool: ocr
    days: mon-fri
    window: "09:00-18:00"
    min: 5
FORESCALE_EOF
      }

      # Tokens and webhook URLs: read from the Nomad Variable at start, never written into this job.
      template {
        destination = "secrets/forescale.env"
        env         = true
        change_mode = "restart"
        data        = <<FORESCALE_EOF
{{ with nomadVar "nomad/jobs/forescale" }}
{{ if .NOMAD_TOKEN }}NOMAD_TOKEN={{ .NOMAD_TOKEN | toJSON }}{{ end }}
{{ if .SLACK_BOT_TOKEN }}SLACK_BOT_TOKEN={{ .SLACK_BOT_TOKEN | toJSON }}{{ end }}
{{ if .SLACK_WEBHOOK_URL }}SLACK_WEBHOOK_URL={{ .SLACK_WEBHOOK_URL | toJSON }}{{ end }}
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
        tags     = ["metrics"]

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

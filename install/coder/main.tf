terraform {
  required_version = ">= 1.0"

  required_providers {
    coder = {
      source  = "coder/coder"
      version = ">= 2.0"
    }
  }
}

variable "agent_id" {
  type        = string
  description = "The ID of a Coder agent."
}

variable "relay_url" {
  type        = string
  description = "The Fulcrum relay's URL, e.g. https://fulcrum.example.com."

  validation {
    condition     = can(regex("^https?://[^\\s'\"\\\\]+$", var.relay_url))
    error_message = "The relay_url must be an http:// or https:// URL, without spaces or quotes."
  }
}

variable "token" {
  type        = string
  description = "A Fulcrum agent token, from the relay's dashboard."
  sensitive   = true

  validation {
    condition     = can(regex("^[A-Za-z0-9._~+/=:-]+$", var.token))
    error_message = "The token must be a Fulcrum agent token (letters, digits and ._~+/=:- only)."
  }
}

variable "root" {
  type        = string
  description = "The directory the agent watches for repositories."
  default     = "/home/coder"

  validation {
    condition     = can(regex("^/[^'\"\\\\\\n]*$", var.root))
    error_message = "The root must be an absolute path, without quotes or backslashes."
  }
}

variable "icon" {
  type        = string
  description = "The icon of the script in the Coder dashboard."
  default     = "/icon/terminal.svg"
}

# For `fulcrum` commands in the workspace's sessions (the agent itself reads its config file).
resource "coder_env" "fulcrum_relay_url" {
  agent_id = var.agent_id
  name     = "FULCRUM_RELAY_URL"
  value    = var.relay_url
}

# Installs or upgrades the agent and (re)starts it on every workspace start. The token is in the
# script's text, never on a command line once it runs: see run.sh.
resource "coder_script" "fulcrum" {
  agent_id     = var.agent_id
  display_name = "Fulcrum"
  icon         = var.icon
  run_on_start = true
  script = templatefile("${path.module}/run.sh", {
    RELAY_URL = var.relay_url
    TOKEN     = var.token
    ROOT      = var.root
  })
}

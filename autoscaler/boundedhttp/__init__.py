"""Bounded HTTP calls, a library of forescale (above ``autoscaler.core``, below the Nomad client and the
adapters): a total deadline per call and a cap on the answer's size, for every requests session forescale
mounts it on (the Nomad client, the Prometheus source). The machinery is in ``adapter.py``."""

from autoscaler.boundedhttp.adapter import BoundedAdapter, CallDeadlineExceeded, ResponseTooLarge, mount

__all__ = ["BoundedAdapter", "CallDeadlineExceeded", "ResponseTooLarge", "mount"]

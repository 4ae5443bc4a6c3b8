"""``workcast fake-fcm``: FCM's v1 API and token endpoint on a loopback port, for trying pushes offline."""

from entrypoints.fake_fcm.app import FCM_ERRORS, FakeFcm

__all__ = ["FCM_ERRORS", "FakeFcm"]

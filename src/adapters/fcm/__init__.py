"""Firebase Cloud Messaging through the firebase-admin SDK."""

"""The operators' SQL (the seed's monitoring queries, on our tables). README shows the same text."""

from __future__ import annotations

# Derives delivery_status exactly as domain.notifications.Notification.delivery_status does.
DELIVERY_STATUS_COUNTS = """\
SELECT CASE
         WHEN delivered_at IS NOT NULL THEN 'delivered'
         WHEN push_state = 'sent' OR socket_state = 'sent' THEN 'sent'
         WHEN push_state = 'pending' OR socket_state = 'pending' THEN 'pending'
         ELSE 'failed'
       END AS delivery_status,
       COUNT(*) AS notifications
FROM notifications
GROUP BY 1
ORDER BY 1;"""

RECENT_WORK_ORDERS = """\
SELECT * FROM work_orders ORDER BY created_at DESC LIMIT 10;"""

ACTIVE_PROVIDERS = """\
SELECT * FROM profiles WHERE role = 'provider' AND is_active_for_work;"""

PUSH_ERRORS = """\
SELECT push_error, COUNT(*) FROM notifications WHERE push_error IS NOT NULL GROUP BY 1 ORDER BY 2 DESC;"""

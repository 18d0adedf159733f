"""The township client kit: everything a township system needs to talk to wmsj from Python.

- ``Events``: typed builders for every township event (``events.py``);
- ``Publisher``: confirms, ``mandatory``, ``user_id``, ``reply_to`` and a local outbox file,
  so a crashed system sends again what the broker did not confirm (``publisher.py``);
- ``ReplyListener``: the refusals on your reply queue (``replies.py``);
- ``Uploader``: evidence uploads by presigned POST policy, returning the claim check
  (``uploads.py``).

docs/township-integration.md § 3 shows them at work.
"""

from wmsj.township.events import Events
from wmsj.township.outbox import Outbox
from wmsj.township.publisher import BrokerRefused, Publisher
from wmsj.township.replies import ReplyListener
from wmsj.township.uploads import Claim, Uploader, UploadRefused

__all__ = [
    "BrokerRefused",
    "Claim",
    "Events",
    "Outbox",
    "Publisher",
    "ReplyListener",
    "UploadRefused",
    "Uploader",
]

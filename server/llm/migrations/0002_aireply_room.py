import django.db.models.deletion
from django.db import migrations, models


def fill_room(apps, schema_editor):
    AiReply = apps.get_model("llm", "AiReply")
    AiChatSession = apps.get_model("llm", "AiChatSession")
    for session_id, room_id in AiChatSession.objects.values_list("id", "room_id"):
        AiReply.objects.filter(session_id=session_id).update(room_id=room_id)


class Migration(migrations.Migration):
    """A reply belongs to a conversation: its room's chat, or one AI session of the room."""

    dependencies = [
        ("chat", "0003_message_ai_session_message_chat_msg_room_chat_and_more"),
        ("llm", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="aireply",
            name="room",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="ai_replies",
                to="chat.chatroom",
            ),
        ),
        migrations.RunPython(fill_room, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="aireply",
            name="room",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="ai_replies",
                to="chat.chatroom",
            ),
        ),
        migrations.AlterField(
            model_name="aireply",
            name="session",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="replies",
                to="llm.aichatsession",
            ),
        ),
        migrations.AddIndex(
            model_name="aireply",
            index=models.Index(
                condition=models.Q(("session__isnull", True)),
                fields=["room", "status", "id"],
                name="llm_reply_room_queue",
            ),
        ),
    ]

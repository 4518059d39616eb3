"""Usernames get a normalised key (sign-in look-up, uniqueness) and a confusable skeleton.

A data migration is needed: sign-in now finds accounts by `username_key` alone, so existing
accounts need theirs filled in before it becomes unique and required (0003), or their owners
could no longer sign in.
"""

from django.db import migrations, models


def fill_derived_names(apps, schema_editor):
    from accounts.usernames import username_key, username_skeleton

    User = apps.get_model("accounts", "User")
    owners: dict[str, str] = {}
    clashes: list[str] = []
    for user in User.objects.only("pk", "username").order_by("pk").iterator():
        key = username_key(user.username)
        if key in owners:
            clashes.append(f"{owners[key]!r} and {user.username!r}")
        owners[key] = user.username
        User.objects.filter(pk=user.pk).update(
            username_key=key, username_skeleton=username_skeleton(user.username)
        )
    if clashes:
        raise RuntimeError(
            "These usernames differ only in case or compatibility form and would become one "
            "name: " + "; ".join(clashes) + ". Rename one of each pair (manage.py shell or "
            "the admin with the previous release), then migrate again."
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="user",
            name="username_key",
            field=models.TextField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name="user",
            name="username_skeleton",
            field=models.TextField(default="", editable=False),
            preserve_default=False,
        ),
        migrations.RunPython(fill_derived_names, migrations.RunPython.noop),
    ]

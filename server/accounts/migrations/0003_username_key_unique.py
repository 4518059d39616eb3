import accounts.models
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_username_key_and_skeleton")]

    operations = [
        migrations.AlterField(
            model_name="user",
            name="username_key",
            field=models.TextField(editable=False, unique=True),
        ),
        migrations.AlterField(
            model_name="user",
            name="username_skeleton",
            field=models.TextField(db_index=True, editable=False),
        ),
        # The key's uniqueness covers it, on every database alike.
        migrations.RemoveConstraint(model_name="user", name="accounts_user_username_ci_unique"),
        migrations.AlterModelManagers(
            name="user", managers=[("objects", accounts.models.AccountManager())]
        ),
    ]

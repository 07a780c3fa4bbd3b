"""Lava processes of our own.  Kept in their own folder: Lava discovers a process's models by importing
every module in the folder of the process's module, so nothing else may live here.  Import only
after ``loihic.deploy.lava.compat.install()``."""

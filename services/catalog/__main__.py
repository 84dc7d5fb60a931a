from libs.service_app import main
from services.catalog.app import definition

main(definition)
